"""Parameters of the built-in market generator (core/sim/market_generator.hpp).

`MarketModelParams` is a frozen msgspec Struct saved as JSON; unknown fields are rejected. Every
field carries its unit in its description (``msgspec.json.schema(MarketModelParams)`` shows
them). The shipped default, ``default_params.json``, is the output of
:func:`bot4.sim.calibration.calibrate` on the Binance USD-M BTCUSDT recording of 2024-08-08; its
``source`` records the file name, its sha256 and the bot4 version that produced it.

Conventions:

* Levels are counted in ticks from the own touch on each side: level k is k ticks behind the
  best price (k = 0 the touch, never empty; deeper levels may be empty). ``n_levels`` = K.
* Queue sizes enter the intensities through bins in units of the level's typical size
  ``typical_size_lots[k]``: bin 0 = empty level; bin i (1 <= i <= E) = sizes in
  (edge[i-2], edge[i-1]] (edge[-1] = 0); bin E+1 = above the last edge; E = len(size_bin_edges).
* Size distributions are tables of quantiles (in lots) at ``quantile_probs``; the generator draws
  by inverse CDF, linear between knots, rounded to whole lots (at least 1).
* Rates are per side, in events per second of time spent in the state. The generator times
  events with the two Hawkes clocks; the rates only set the relative probability of each kind of
  event at each instant (a marked Hawkes process with state-dependent marks).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import msgspec

from bot4.errors import ConfigError
from bot4.instrument import InstrumentSpec

SCHEMA_VERSION = 1


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


Floats = tuple[float, ...]
Table = tuple[float, ...]
Tables = tuple[tuple[float, ...], ...]
TableGrid = tuple[tuple[tuple[float, ...], ...], ...]


class HawkesClockParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Hawkes clock with up to two exponential kernels:
    lambda(t) = mu + sum_i [alpha exp(-beta (t - t_i)) + alpha2 exp(-beta2 (t - t_i))]."""

    mu: Annotated[float, _doc("baseline intensity, events per second (> 0)")]
    alpha: Annotated[float, _doc("intensity jump at each event, first kernel, events per second")]
    beta: Annotated[float, _doc("decay rate of the first kernel, 1/second")]
    alpha2: Annotated[float, _doc("intensity jump at each event, second kernel, events per "
                                  "second (0: a single kernel)")] = 0.0
    beta2: Annotated[float, _doc("decay rate of the second kernel, 1/second; the branching ratio "
                                 "alpha/beta + alpha2/beta2 must be < 1")] = 1.0

    @property
    def branching_ratio(self) -> float:
        """alpha/beta + alpha2/beta2: mean number of events directly triggered by one event."""
        return self.alpha / self.beta + self.alpha2 / self.beta2

    @property
    def mean_rate(self) -> float:
        """Stationary mean intensity mu / (1 - branching ratio), events per second."""
        return self.mu / (1.0 - self.branching_ratio)

    def as_dict(self) -> dict[str, float]:
        """mu, alpha, beta, alpha2 and beta2 as a dict."""
        return {"mu": self.mu, "alpha": self.alpha, "beta": self.beta, "alpha2": self.alpha2,
                "beta2": self.beta2}


class SourceInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a calibrated parameter set came from."""

    file: Annotated[str, _doc("file name of the recording calibrated on (no directory)")]
    sha256: Annotated[str, _doc("sha256 of that file's bytes, hex")]
    bot4_version: Annotated[str, _doc("bot4 version that ran the calibration")]
    start_ns: Annotated[int, _doc("first exchange timestamp used, ns since the Unix epoch")]
    duration_s: Annotated[float, _doc("span of the book messages used, seconds")]
    book_messages: Annotated[int, _doc("book messages (diffs) used")]
    trades: Annotated[int, _doc("trades used")]
    method: Annotated[str, _doc("one-line summary of the calibration method")]


class MarketModelParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the market generator needs; see the module docstring for the conventions."""

    schema_version: Annotated[int, _doc("version of this parameter layout (currently 1)")]
    instrument: Annotated[InstrumentSpec, _doc("instrument spec: tick size (price per tick) and "
                                               "lot size (quantity per lot) of every integer")]
    initial_bid_ticks: Annotated[int, _doc("best bid of the initial book, ticks (ask = bid + 1)")]
    epoch_ns: Annotated[int, _doc("simulated clock origin: ts_exchange of the snapshot, ns since "
                                  "the Unix epoch")]
    n_levels: Annotated[int, _doc("K: price levels modelled per side, ticks from the own touch")]

    size_bin_edges: Annotated[Floats, _doc("queue-size bin edges, in units of the level's typical "
                                           "size (dimensionless, increasing)")]
    typical_size_lots: Annotated[Floats, _doc("typical event size per level k (median size of "
                                              "adds and cancels at k), lots; K entries")]
    add_rate: Annotated[Tables, _doc("limit-order add intensity per side at level k given the "
                                     "queue bin, events/second; K rows x (E+2) bins")]
    cancel_rate: Annotated[Tables, _doc("cancel intensity per side at level k given the queue "
                                        "bin, events/second; K rows x (E+2) bins (bin 0 unused)")]
    clear_prob: Annotated[Tables, _doc("probability that a cancel event at level k given the "
                                       "queue bin removes the whole level (quote withdrawn) "
                                       "rather than a partial size; K rows x (E+2) bins")]
    mo_withdraw_prob: Annotated[Floats, _doc("probability that the rest of a touch a market order "
                                             "hit but did not empty is withdrawn at once, by the "
                                             "bin of the rest (E+2 bins), dimensionless")]
    market_rate: Annotated[Floats, _doc("market-order intensity against one side given the bin "
                                        "of that side's touch queue, events/second; E+2 bins")]
    inside_add_rate: Annotated[float, _doc("intensity of new touches inside the spread per side "
                                           "while the spread exceeds one tick (a Poisson clock), "
                                           "events/second")]
    inside_follow_prob: Annotated[float, _doc("probability that the inside add comes from the "
                                              "side opposite the last outward touch jump (the "
                                              "book shifts as a whole), dimensionless")]
    inside_gap_weights: Annotated[Floats, _doc("relative frequency of an inside add leaving r "
                                               "ticks of spread beyond one (entry r = 0, 1, ...; "
                                               "truncated to the spread when drawn)")]
    touch_jump_ticks: Annotated[Table, _doc("outward jump of a touch that emptied, quantiles in "
                                            "ticks (>= 1)")]
    new_touch_size_lots: Annotated[Table, _doc("size of the touch after an outward jump when the "
                                               "level landed on was empty, quantiles in lots")]
    level_occupancy: Annotated[Floats, _doc("probability that level k is non-empty (initial book "
                                            "and far-end refills), dimensionless; K entries")]

    quantile_probs: Annotated[Floats, _doc("probabilities of the knots of every size table, "
                                           "increasing from 0 to 1")]
    level_size_lots: Annotated[Tables, _doc("size of a non-empty level k (k = 0: touch), "
                                            "quantiles in lots; K tables")]
    add_size_lots: Annotated[TableGrid, _doc("lots added by one add event at level k given the "
                                             "queue bin (split into orders of order_size_lots), "
                                             "quantiles in lots; K x (E+2) tables")]
    cancel_size_lots: Annotated[TableGrid, _doc("lots removed by one partial cancel event at level "
                                                "k given the queue bin, quantiles in lots; "
                                                "K x (E+2) tables (bin 0 unused)")]
    order_size_lots: Annotated[Table, _doc("size of one resting limit order, quantiles in lots")]
    inside_add_size_lots: Annotated[Table, _doc("size of a new touch placed inside the spread, "
                                                "quantiles in lots")]
    market_order_size_lots: Annotated[Table, _doc("market-order size, quantiles in lots (capped "
                                                  "by the K levels it meets)")]
    cancel_newest_prob: Annotated[float, _doc("probability that a cancel takes the newest order "
                                              "of the level rather than a uniformly random one")]
    max_orders_per_split: Annotated[int, _doc("lots added at once (an add event, a refill, the "
                                              "initial book) are split into at most this many "
                                              "orders (count)")]

    limit_clock: Annotated[HawkesClockParams, _doc("Hawkes clock of adds, cancels and inside "
                                                   "adds (rates in events/second)")]
    market_clock: Annotated[HawkesClockParams, _doc("Hawkes clock of market orders (rates in "
                                                    "events/second)")]

    latency_median_ns: Annotated[int, _doc("median feed latency ts_local - ts_exchange, ns")]
    latency_min_ns: Annotated[int, _doc("floor of the feed latency, ns")]
    latency_dispersion_ns: Annotated[Table, _doc("feed latency minus its median, quantiles in ns")]
    latency_memory_ns: Annotated[float, _doc("persistence of the latency: an event keeps the "
                                             "previous latency quantile with probability "
                                             "exp(-gap/latency_memory_ns); ns")]

    source: Annotated[SourceInfo | None, _doc("provenance of a calibrated set (None if "
                                              "hand-made)")] = None
    facts: Annotated[dict[str, float], _doc("stylised facts of the source recording measured by "
                                            "the calibration (see bot4.sim.facts; units in the "
                                            "key names)")] = {}

    # --- derived views ------------------------------------------------------------------------

    @property
    def n_bins(self) -> int:
        """Queue-size bins: empty, one per edge, and above the last edge."""
        return len(self.size_bin_edges) + 2

    def validate(self) -> MarketModelParams:
        """Check shapes and ranges (the core re-checks everything); returns self."""
        K, nb, nq = self.n_levels, self.n_bins, len(self.quantile_probs)
        problems = []
        if self.schema_version != SCHEMA_VERSION:
            problems.append(f"schema_version {self.schema_version} != {SCHEMA_VERSION}")
        for name in ("typical_size_lots", "level_occupancy"):
            if len(getattr(self, name)) != K:
                problems.append(f"{name}: {len(getattr(self, name))} entries, expected n_levels={K}")
        for name in ("add_rate", "cancel_rate", "clear_prob"):
            rows = getattr(self, name)
            if len(rows) != K or any(len(r) != nb for r in rows):
                problems.append(f"{name}: expected {K} rows of {nb} bins")
        for name in ("market_rate", "mo_withdraw_prob"):
            if len(getattr(self, name)) != nb:
                problems.append(f"{name}: expected {nb} bins")
        if len(self.level_size_lots) != K or any(len(t) != nq for t in self.level_size_lots):
            problems.append(f"level_size_lots: expected {K} tables of {nq} quantiles")
        for name in ("add_size_lots", "cancel_size_lots"):
            grid = getattr(self, name)
            if len(grid) != K or any(len(row) != nb or any(len(t) != nq for t in row) for row in grid):
                problems.append(f"{name}: expected {K} x {nb} tables of {nq} quantiles")
        for name in ("inside_add_size_lots", "market_order_size_lots", "order_size_lots",
                     "touch_jump_ticks", "new_touch_size_lots", "latency_dispersion_ns"):
            if len(getattr(self, name)) != nq:
                problems.append(f"{name}: expected {nq} quantiles")
        if problems:
            raise ConfigError("invalid MarketModelParams: " + "; ".join(problems))
        from bot4 import _core

        try:
            _core.sim.validate(self.core_config())
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(str(exc)) from exc
        return self

    def core_config(self) -> dict[str, Any]:
        """The flat dict bot4._core.sim takes."""

        return {
            "instrument": self.instrument.instrument_id,
            "initial_bid": self.initial_bid_ticks,
            "epoch_ns": self.epoch_ns,
            "n_levels": self.n_levels,
            "size_bin_edges": list(self.size_bin_edges),
            "typical_size": list(self.typical_size_lots),
            "add_rate": [x for row in self.add_rate for x in row],
            "cancel_rate": [x for row in self.cancel_rate for x in row],
            "clear_prob": [x for row in self.clear_prob for x in row],
            "market_rate": list(self.market_rate),
            "mo_withdraw_prob": list(self.mo_withdraw_prob),
            "inside_add_rate": self.inside_add_rate,
            "inside_follow_prob": self.inside_follow_prob,
            "inside_gap_weights": list(self.inside_gap_weights),
            "touch_jump": list(self.touch_jump_ticks),
            "new_touch_size": list(self.new_touch_size_lots),
            "level_occupancy": list(self.level_occupancy),
            "quantile_probs": list(self.quantile_probs),
            "level_size": [list(t) for t in self.level_size_lots],
            "add_size": [list(t) for row in self.add_size_lots for t in row],
            "cancel_size": [list(t) for row in self.cancel_size_lots for t in row],
            "inside_add_size": list(self.inside_add_size_lots),
            "market_order_size": list(self.market_order_size_lots),
            "order_size": list(self.order_size_lots),
            "cancel_newest_prob": self.cancel_newest_prob,
            "max_orders_per_split": self.max_orders_per_split,
            "limit_clock": self.limit_clock.as_dict(),
            "market_clock": self.market_clock.as_dict(),
            "latency_median_ns": self.latency_median_ns,
            "latency_min_ns": self.latency_min_ns,
            "latency_dispersion": list(self.latency_dispersion_ns),
            "latency_memory_ns": self.latency_memory_ns,
        }

    def replace(self, **changes: Any) -> MarketModelParams:
        """A copy with some fields changed (the struct is frozen)."""
        return msgspec.structs.replace(self, **changes)

    # --- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> bytes:
        """The parameters as indented JSON bytes (what save writes)."""
        return msgspec.json.format(msgspec.json.encode(self), indent=1) + b"\n"

    def save(self, path: str | Path) -> Path:
        """Write to_json() to `path`; returns the path."""
        path = Path(path)
        path.write_bytes(self.to_json())
        return path

    @classmethod
    def from_json(cls, data: bytes | str) -> MarketModelParams:
        """Parameters from JSON text, validated; ConfigError naming the problem."""
        try:
            return msgspec.json.decode(data, type=cls).validate()
        except msgspec.ValidationError as exc:
            raise ConfigError(f"invalid market model parameters: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise ConfigError(f"market model parameters are not valid JSON: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> MarketModelParams:
        """Parameters from a JSON file; ConfigError if it is missing or invalid."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no such parameter file: {path}")
        return cls.from_json(path.read_bytes())


DEFAULT_PARAMS_RESOURCE = "default_params.json"

_default: MarketModelParams | None = None


def default_params() -> MarketModelParams:
    """The shipped default (package data ``bot4/sim/default_params.json``), loaded once."""
    global _default
    if _default is None:
        data = resources.files("bot4.sim").joinpath(DEFAULT_PARAMS_RESOURCE).read_bytes()
        _default = MarketModelParams.from_json(data)
    return _default


def field_docs() -> dict[str, str]:
    """Field name -> description (with unit) for every MarketModelParams field."""
    schema = msgspec.json.schema(MarketModelParams)
    props = schema["$defs"]["MarketModelParams"]["properties"]
    return {name: spec.get("description", "") for name, spec in props.items()}
