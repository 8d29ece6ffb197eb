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

import dataclasses
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Optional

from upath import UPath

from adchain_assets.plan.calls import OK, Call, LatestCalls, Spend, spend_of
from adchain_assets.plan.catalogue import price
from adchain_assets.store.files import files_below, read_below, write_atomically

logger = logging.getLogger(__name__)


class Ledger:
    """The ledger under ``<storage>/ledger``."""

    def __init__(self, storage_url: str):
        self.root = UPath(storage_url) / "ledger"

    def record(self, call: Call) -> Call:
        """Append ``call`` (durably); returns it as stored (with its time)."""
        stamped = call if call.created_at else dataclasses.replace(call, created_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"))
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
