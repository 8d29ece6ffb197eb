"""The estimate each run was launched with, kept so that the run's report can set it beside what was spent.

The sensor and ``adchain materialize`` save a plan's estimate (:func:`save_estimate`) as
``<storage>/estimates/<campaign>/<id>.json`` (written atomically; ``id`` is the digest of its content, so the same
estimate is one file) and tag the run with the id and the total; the report reads it back
(:func:`load_estimate`). A run launched another way (the UI's *Materialize*) has no estimate: its report leaves
the column empty.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional

from upath import UPath

from adchain_assets.plan.estimate import Estimate
from adchain_assets.store.files import write_atomically


def _folder(storage_url: str, campaign: str) -> UPath:
    return UPath(storage_url) / "estimates" / campaign


def estimate_record(campaign: str, brief_sha256: str, estimate: Estimate) -> dict:
    return {
        "campaign": campaign, "brief_sha256": brief_sha256, "estimate_usd": estimate.usd,
        "spent_usd": estimate.spent_usd, "budget_usd": estimate.budget_usd,
        "outputs": {name: {"estimate_usd": one.usd, "basis": one.basis, "calls": one.calls, "model": one.model}
                    for name, one in estimate.outputs.items()},
    }


def save_estimate(storage_url: str, campaign: str, brief_sha256: str, estimate: Estimate) -> str:
    """Keep ``estimate`` of a run about to be launched; returns its id (for the run's tags)."""
    data = json.dumps(estimate_record(campaign, brief_sha256, estimate), sort_keys=True).encode()
    key = hashlib.sha256(data).hexdigest()[:16]
    path = _folder(storage_url, campaign) / f"{key}.json"
    if not path.exists():
        write_atomically(path, data + b"\n")
    return key


def load_estimate(storage_url: str, campaign: str, key: Optional[str]) -> Optional[dict]:
    """The estimate saved under ``key``, or None (no key, or nothing readable there)."""
    if not key or not key.isalnum():
        return None
    try:
        return json.loads((_folder(storage_url, campaign) / f"{key}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
