"""Enrichment (topic ENRICHMENT): a slow outside source's answers, cached with a time to live.
A strategy reads the cache; a decision never waits for a request to be answered."""

from __future__ import annotations

from typing import Annotated

import msgspec

from bot4.contracts.base import Message, TsNs

NonNegNs = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="ns")]


class EnrichmentRequest(Message, frozen=True, kw_only=True, tag="enrich_req"):
    """Ask the source for `key`; an answer later than `timeout_ns` after `ts` is a failure."""

    ts: TsNs
    key: Annotated[str, msgspec.Meta(min_length=1)]
    timeout_ns: NonNegNs


class Enrichment(Message, frozen=True, kw_only=True, tag="enrich"):
    """The answer for `key`: a value valid for `ttl_ns` after `ts` when ok, else `error` (timeout,
    source failure). latency_ns: request to answer."""

    ts: TsNs
    key: Annotated[str, msgspec.Meta(min_length=1)]
    ok: bool
    value: bool | int | float | str | None = None
    ttl_ns: NonNegNs = 0
    latency_ns: NonNegNs = 0
    error: str = ""


EnrichmentMessage = EnrichmentRequest | Enrichment
