"""Services that run the core live behind ZeroMQ (feed, engine, venue, control, journal, perf,
enrichment). They depend on bot4.contracts for every message; contracts never import them."""
