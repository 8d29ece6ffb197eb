"""The plan: which outputs of a campaign are out of date with its brief, and why, computed from what is stored.

For every output of the brief, parents first: an output whose parent is out of date waits for it ("parent
changed"); otherwise its request is built from the brief and the stored parents (:func:`build_request`) and
compared with the ``request_sha256`` its stored provenance records: no file is "missing", another fingerprint is
"changed request", and a request whose last call failed says so ("last attempt failed: HTTP_503"). A request the
model refused for a final reason (a safety block, in the ledger) is *held*, not out of date: it is not asked
again until its request changes or a new take is asked for, and what needs it waits with it. A request the
campaign's budget stopped (``BUDGET`` in the ledger) is held the same way, until the budget changes. An approved
output is held too, whatever its request now says ("approved; request changed: ..." tells what the approval holds
back), and what follows it is planned from its approved bytes. An image's or a sheet's request carries the
director's notes in force on it (:func:`adchain_assets.plan.review.current_request`).

Nothing here remembers what an earlier tick asked for: after any sequence of edits, reverts, failed, cancelled
or killed runs, the plan of the stored outputs and the current brief is the work left. The sensor, ``adchain
plan`` and ``adchain materialize`` all use :func:`plan_campaign`. It is pure: the store reads what it needs
(provenance JSON and the ledger, never image bytes) into a :class:`Stored`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.plan.calls import OK, Call, LatestCalls, spend_of
from adchain_assets.plan.placements import tolerates_held
from adchain_assets.plan.requests import (
    REPORT,
    STORYBOARD,
    STORYBOARD_PDF,
    Maker,
    Parent,
    Request,
    fingerprint,
    kind_of,
    outputs_of,
    parents_of,
)
from adchain_assets.plan.review import APPROVED_BUT_MISSING, Approval, approved_reason, current_request

if TYPE_CHECKING:
    from adchain_assets.plan.estimate import Estimate

MISSING, CHANGED, PARENT_CHANGED, FAILED = "missing", "changed request", "parent changed", "last attempt failed"
# Made from whatever exists: a held image is an empty cell, not a reason to wait.
TOLERANT = (STORYBOARD, REPORT, STORYBOARD_PDF)


@dataclass
class Plan:
    campaign: str
    brief_sha256: str
    outdated: list[tuple[str, str]] = field(default_factory=list)
    held: list[tuple[str, str]] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)  # stored request_sha256 of each outdated output
    requests: dict[str, Request] = field(default_factory=dict)  # of each outdated output not waiting for a parent
    estimate: Optional["Estimate"] = None  # its price (adchain_assets.plan.estimate), when priced

    @property
    def outputs(self) -> list[str]:
        return [name for name, _ in self.outdated]

    def run_key(self) -> str:
        """Names exactly this work: the same plan (same outputs, same stored state) is never requested twice, and
        any change of the stored outputs or the brief makes a new key (so undoing an edit runs)."""
        work = sorted((name, self.fingerprints.get(name, "")) for name in self.outputs)
        return f"{self.campaign}:{self.brief_sha256[:12]}:{fingerprint({'work': work})[:16]}"

    def to_json(self) -> dict:
        data = {
            "campaign": self.campaign,
            "brief_sha256": self.brief_sha256,
            "outdated": [{"asset": name, "reason": reason} for name, reason in self.outdated],
            "held": [{"asset": name, "reason": reason} for name, reason in self.held],
        }
        return data if self.estimate is None else self.estimate.add_to(data)


@dataclass(frozen=True)
class Stored:
    """What is stored of one campaign, as the plan needs it: the provenance of each made output (None: not made),
    the take a cut-short write's JSON names for an image whose PNG is missing, and every ledger call."""

    records: Mapping[str, Optional[dict]]
    calls: Sequence[Call] = ()
    pending_takes: Mapping[str, int] = field(default_factory=dict)
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    approvals: Mapping[str, Approval] = field(default_factory=dict)


def plan_campaign(loaded: LoadedBrief, stored: Stored, *, image_maker: Maker, video_maker: Maker,
                  budget_usd: Optional[float] = None) -> Plan:
    """The plan of ``loaded`` against what is ``stored``: every output of :func:`outputs_of`, parents first.
    ``budget_usd`` is the campaign's budget: a request refused for the budget is held only under that budget."""
    campaign = loaded.campaign
    plan = Plan(campaign, loaded.sha256)
    records = stored.records
    latest = LatestCalls(stored.calls)
    spend = spend_of(stored.calls).spend_usd
    state: dict[str, str] = {}
    for name in outputs_of(loaded.brief):
        parents = parents_of(name, loaded, image_maker, video_maker)
        waiting = [p for p in parents if state.get(p) == "outdated"]
        held_parents = [p for p in parents if state.get(p) == "held"]
        record = records.get(name)
        if record is not None:
            plan.fingerprints[name] = str(record.get("request_sha256", ""))
        if waiting:
            _settle(plan, state, stored, name, "outdated", f"{PARENT_CHANGED}: {waiting[0]}")
            continue
        if held_parents and name not in TOLERANT and not tolerates_held(name):
            _settle(plan, state, stored, name, "held", f"waits for held {held_parents[0]}")
            continue
        take = take_of(name, record, stored.pending_takes)
        request = current_request(
            name, loaded, {p: Parent(p, records[p]) for p in parents if records.get(p) is not None},
            record=record, notes=stored.notes.get(name, ()), approved=stored.approvals.keys(),
            image_maker=image_maker, video_maker=video_maker, take=take, spend_usd=spend,
        )
        if record is not None and record.get("request_sha256") == request.fingerprint:
            _settle(plan, state, stored, name, "ok")
            continue
        refused = latest.refusal(name, request.call_keys, budget_usd)
        if refused is not None:
            _settle(plan, state, stored, name, "held", f"final failure: {refused.outcome}")
            continue
        failed = next((c for c in latest.tried(name, request.call_keys) if c.outcome != OK), None)
        if failed is not None:
            _settle(plan, state, stored, name, "outdated", f"{FAILED}: {failed.outcome}")
        else:
            _settle(plan, state, stored, name, "outdated", MISSING if record is None else CHANGED)
        if state[name] == "outdated":
            plan.requests[name] = request
    return plan


def _settle(plan: Plan, state: dict[str, str], stored: Stored, name: str, status: str, reason: str = "") -> None:
    """Record the verdict on ``name`` (ok, outdated or held, and why). An approved output is held whatever its
    request says, and counts as made for what follows it; one whose file is gone holds what follows it too."""
    if name in stored.approvals:
        made = stored.records.get(name) is not None
        state[name] = "ok" if made else "held"
        plan.held.append((name, approved_reason(status, reason) if made else APPROVED_BUT_MISSING))
        return
    state[name] = status
    if status == "outdated":
        plan.outdated.append((name, reason))
    elif status == "held":
        plan.held.append((name, reason))


def take_of(name: str, record: Optional[dict], pending: Mapping[str, int]) -> int:
    if kind_of(name) not in ("image", "sheet"):
        return 0
    if record is not None:
        return int(record.get("take", 0))
    return pending.get(name, 0)  # a JSON whose image write was cut short
