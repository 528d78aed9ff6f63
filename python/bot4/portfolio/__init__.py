"""Portfolio layer building blocks: signal agents and the meta-weighter that blends them, risk
measures, sizing and the safety projection, diversified selection, the transaction-cost model and
off-policy evaluation (issue 13). One module each."""
