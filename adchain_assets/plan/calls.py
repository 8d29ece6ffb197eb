"""What the ledger records of one model call, and what is derived from a list of them: spend, and the last
answer each request got. Pure: the ledger (:mod:`adchain_assets.store.ledger`) reads and writes the records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

OK = "ok"
# The outcome of a paid call that was not made: the campaign's ledger total had reached its budget. Recorded with
# the budget in force (``detail["budget_usd"]``) and held like a model's final refusal, but only under that budget.
BUDGET = "BUDGET"


@dataclass(frozen=True)
class Call:
    """One call: who asked (campaign, output, request fingerprint), whom (backend, model) and what came back."""

    campaign: str
    output: str
    request_sha256: str
    backend: str
    model: str
    kind: str  # image | video | text
    attempt: int
    outcome: str  # "ok", or the reason there was no usable answer (IMAGE_SAFETY, HTTP_503, ...)
    final: bool = False  # the same request would get the same refusal: not asked again
    usage: Mapping[str, Any] = field(default_factory=dict)
    cost_usd: Optional[float] = None
    run_id: Optional[str] = None
    latency_s: float = 0.0
    created_at: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spend:
    spend_usd: float
    paid_calls: int
    unpriced_calls: int


def spend_of(calls: Iterable[Call]) -> Spend:
    """Spend over ``calls``: a reply that reported usage is billed; an HTTP error bills nothing."""
    billed = [c for c in calls if c.usage]
    priced = [c.cost_usd for c in billed if c.cost_usd is not None]
    return Spend(float(round(sum(priced), 6)), len(billed), sum(1 for c in billed if c.cost_usd is None))


class LatestCalls:
    """The last call made for each (output, request fingerprint), from one read of the ledger."""

    def __init__(self, calls: Iterable[Call]):
        self._last: dict[tuple[str, str], Call] = {}
        for call in calls:  # oldest first: the last one written wins
            self._last[(call.output, call.request_sha256)] = call

    def tried(self, output: str, keys: Iterable[str]) -> list[Call]:
        return [self._last[(output, key)] for key in keys if (output, key) in self._last]

    def refusal(self, output: str, keys: Iterable[str], budget_usd: Optional[float] = None) -> Optional[Call]:
        """The model's final refusal of one of these requests, if that was its last answer: not asked again. A
        ``BUDGET`` refusal holds only while ``budget_usd`` is the budget it was refused under."""
        return next((c for c in self.tried(output, keys)
                     if c.final and c.outcome != OK and (c.outcome != BUDGET or budget_unchanged(c, budget_usd))), None)


def budget_unchanged(call: Call, budget_usd: Optional[float]) -> bool:
    """Whether ``budget_usd`` is the budget ``call`` (a ``BUDGET`` refusal) was refused under."""
    refused_under = call.detail.get("budget_usd")
    if refused_under is None or budget_usd is None:
        return refused_under is None and budget_usd is None
    return round(float(refused_under), 6) == round(float(budget_usd), 6)
