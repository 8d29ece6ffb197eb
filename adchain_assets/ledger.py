"""The ledger: one record per model call that reached a paid API, written by the code that made the call.

Each call is its own small JSON object, ``<storage>/ledger/<campaign>/<time>-<uuid>.json``, written atomically
(temporary file, fsync, rename, folder fsync) the moment the reply is in, before the image is decoded, cached or
stored: a crash after the reply never loses what it cost. One object per call makes the ledger append-only on
any storage (object stores cannot append to an object) and safe for any number of writers. Spend is the sum over
the records; a call whose price the catalogue does not know is recorded with ``cost_usd: null`` and counted in
``unpriced_calls`` (with a warning) instead of as $0.

What it cannot do: a call whose process died before the reply arrived has no record (nothing says whether Google
billed it); the HTTP-level retries inside google-genai are one call here (only the final reply is seen).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from upath import UPath

from adchain_assets.catalogue import price
from adchain_assets.storage import files_below, read_below, write_atomically

logger = logging.getLogger(__name__)

OK = "ok"


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


class Ledger:
    """The ledger under ``<storage>/ledger``."""

    def __init__(self, storage_url: str):
        self.root = UPath(storage_url) / "ledger"

    def record(self, call: Call) -> Call:
        """Append ``call`` (durably); returns it as stored (with its time)."""
        stamped = call if call.created_at else _with(call, created_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"))
        if stamped.cost_usd is None and stamped.outcome == OK:
            logger.warning("%s: no price for model %r in the catalogue; its cost is recorded as unknown", call.output, call.model)
        name = f"{stamped.created_at.replace(':', '').replace('-', '').replace('+0000', 'Z')}-{uuid.uuid4().hex[:12]}.json"
        write_atomically(self.root / call.campaign / name, json.dumps(asdict(stamped), sort_keys=True).encode() + b"\n")
        return stamped

    def calls(self, campaign: str) -> list[Call]:
        """Every recorded call of ``campaign``, oldest first."""
        return sorted(self._read(campaign), key=lambda c: c.created_at)

    def _read(self, campaign: str) -> Iterator[Call]:
        """Every record, with one listing and one batch of reads (concurrent on an object store)."""
        folder = self.root / campaign
        names = [name for name in files_below(folder) if "/" not in name and name.endswith(".json") and not name.startswith(".")]
        for name, text in read_below(folder, names).items():
            try:
                data = json.loads(text)
                yield Call(**{field: data[field] for field in Call.__dataclass_fields__ if field in data})
            except (ValueError, TypeError) as error:
                logger.warning("ledger record %s cannot be read (%s); left alone", folder / name, error)

    def spend(self, campaign: str) -> Spend:
        return spend_of(self.calls(campaign))

    def latest(self, campaign: str) -> "LatestCalls":
        return LatestCalls(self.calls(campaign))


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

    def refusal(self, output: str, keys: Iterable[str]) -> Optional[Call]:
        """The model's final refusal of one of these requests, if that was its last answer: not asked again."""
        return next((c for c in self.tried(output, keys) if c.final and c.outcome != OK), None)


def _with(call: Call, **changes) -> Call:
    return Call(**{**asdict(call), **changes})


Meter = Callable[..., None]


@dataclass(frozen=True)
class CallMeter:
    """What a generator is handed so that it can record its own calls: who is asking, and for which request.

    The generator calls it once per reply (or per final transport error) with what only it knows: backend,
    model, kind, attempt, outcome, usage. The price is looked up here, from the catalogue.
    """

    ledger: Optional[Ledger]
    campaign: str
    output: str
    request_sha256: str
    run_id: Optional[str] = None

    def __call__(self, *, backend: str, model: str, kind: str, attempt: int, outcome: str = OK,
                 final: bool = False, usage: Optional[Mapping[str, Any]] = None, latency_s: float = 0.0,
                 detail: Optional[Mapping[str, Any]] = None) -> None:
        if self.ledger is None:
            return
        usage = dict(usage or {})
        self.ledger.record(Call(
            campaign=self.campaign, output=self.output, request_sha256=self.request_sha256, backend=backend,
            model=model, kind=kind, attempt=attempt, outcome=outcome, final=final, usage=usage,
            cost_usd=price(model, usage) if usage else 0.0, run_id=self.run_id, latency_s=round(latency_s, 4),
            detail=dict(detail or {}),
        ))
