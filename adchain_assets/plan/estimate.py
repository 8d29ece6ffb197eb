"""What a plan will cost before it runs, and whether the campaign's budget lets it run. Pure: the store reads what
it needs (the ledger's calls, the generation cache's entries), and :func:`estimate_plan` prices the plan from them.

Each out-of-date output is priced by its model calls:

- ``cached``: every candidate key of its request is in the generation cache: $0, no call. When the cache entry
  names the pixels it holds, what follows the output is priced on the request it will then have (an undone edit
  costs $0 all the way down); otherwise what follows is priced as new calls.
- no model call (storyboard, the ad with its finish, report, storyboard PDF, deliverables: rendered or copied here;
  the brief's own ``reference_image``) and ``offline`` (the preview backends): $0.
- an image: the price (catalogue, today) of the mean usage of this campaign's last :data:`RECENT_CALLS` successful
  calls of that model in its ledger (``observed``); before there is one, of the catalogue's ``nominal`` usage
  (output image tokens per image, input tokens for the prompt and each reference image shown). Times the takes of
  ``takes_per_image`` not answered by the cache.
- a clip: the catalogue's price per second at the brief's resolution, times the seconds the model makes for the
  scene's ``duration_s`` (a clip's usage is its length: nothing to observe).
- a placement's outputs (:mod:`adchain_assets.plan.placements`): a frame is one image call (not one per take),
  priced as an image shown its master frame and sheets; a clip the video model makes is a clip; a cropped clip,
  a placement's ad and its storyboard make no model call ($0).

Retries are not counted: a reply without an image asked again, a transient fault retried, a step retried (the
ledger counts each billed reply). A model or price the catalogue does not know makes the output's estimate and
the plan's ``None`` (shown as ``unknown``), never $0; a campaign with a budget does not launch such a plan.

The budget (:meth:`Estimate.refusal`): a plan is launched when the campaign's ledger total plus the plan's estimate
stays within ``budget_usd``; a plan that costs $0 is always launched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.plan.calls import OK, Call, spend_of
from adchain_assets.plan.catalogue import clip_seconds, model_entry, nominal_usage, price
from adchain_assets.plan.placements import is_placement, placement_call, placement_frame_prompt
from adchain_assets.plan.plan import Plan, Stored, take_of
from adchain_assets.plan.prompts import compose_prompt, compose_sheet_prompt
from adchain_assets.plan.references import Slot
from adchain_assets.plan.requests import (
    FINISHING,
    Maker,
    Parent,
    Request,
    kind_of,
    outputs_of,
    parents_of,
    reference_limits_for,
    scene_of,
    shown_to,
    subject_of,
)
from adchain_assets.plan.review import current_request

RECENT_CALLS = 20  # the successful calls of a model, newest first, whose mean usage prices the next ones
CACHED, NO_CALL, OFFLINE, NOMINAL = "cached", "no model call", "offline", "nominal"
OFFLINE_BACKENDS = ("preview",)

CacheLookup = Callable[[str], Optional[Mapping]]
"""The generation cache's entry under a request key (its ``meta.json``: ``sha256``, maybe ``pixels_sha256``), or None."""


@dataclass(frozen=True)
class OutputEstimate:
    usd: Optional[float]  # None: a price the catalogue does not know
    basis: str  # what the figure rests on: cached, nominal, "observed (mean of 12 calls)", "no price for model X"
    calls: int = 0  # paid calls expected
    model: str = ""


@dataclass(frozen=True)
class Estimate:
    """The price of a plan's out-of-date outputs, what the campaign has spent, and its budget."""

    outputs: Mapping[str, OutputEstimate] = field(default_factory=dict)
    spent_usd: float = 0.0
    budget_usd: Optional[float] = None

    @property
    def usd(self) -> Optional[float]:
        """The plan's estimate; None when some output's price is unknown."""
        values = [one.usd for one in self.outputs.values()]
        return None if any(v is None for v in values) else round(sum(values), 6)

    @property
    def unpriced_models(self) -> list[str]:
        return sorted({one.model for one in self.outputs.values() if one.usd is None})

    @property
    def calls(self) -> int:
        return sum(one.calls for one in self.outputs.values())

    @property
    def remaining_usd(self) -> Optional[float]:
        return None if self.budget_usd is None else round(max(0.0, self.budget_usd - self.spent_usd), 6)

    def refusal(self, campaign: str) -> Optional[str]:
        """Why this plan must not be launched under the campaign's budget (one line), or None."""
        if self.budget_usd is None:
            return None
        total = self.usd
        spent = f"spent {money(self.spent_usd)} of {money(self.budget_usd)}"
        if total is None:
            models = ", ".join(self.unpriced_models)
            return (f"{campaign}: plan price unknown (no price for model {models} in the catalogue), {spent}: with a"
                    " budget, unpriced work is not launched: choose a catalogued model or remove the budget")
        if total > 0 and self.spent_usd + total > self.budget_usd + 1e-9:
            return f"{campaign}: plan ~{money(total)}, {spent}: raise budget_usd or narrow the change"
        return None

    def summary(self) -> str:
        """``~$0.4700 (7 paid calls)``, or what makes it unknown."""
        total = self.usd
        if total is None:
            return f"unknown (no price for model {', '.join(self.unpriced_models)})"
        return f"~{money(total)} ({self.calls} paid call{'s' if self.calls != 1 else ''})"

    def add_to(self, data: dict) -> dict:
        """``plan --json`` with the estimate: ``estimate_usd`` and ``estimate`` (its basis) per outdated entry,
        and ``estimate_usd``, ``spent_usd``, ``budget_usd``, ``remaining_usd`` for the plan."""
        for entry in data.get("outdated", []):
            one = self.outputs.get(entry["asset"])
            entry["estimate_usd"] = None if one is None else one.usd
            entry["estimate"] = "unknown" if one is None else one.basis
        data.update(estimate_usd=self.usd, spent_usd=self.spent_usd, budget_usd=self.budget_usd,
                    remaining_usd=self.remaining_usd)
        return data


def money(usd: float) -> str:
    """Dollars and cents; four decimals for an amount under a cent (one cheap call)."""
    return f"${usd:.4f}" if 0 < abs(usd) < 0.01 else f"${usd:.2f}"


def observed_usage(calls: Sequence[Call], recent: int = RECENT_CALLS) -> dict[tuple[str, str], tuple[dict, int]]:
    """``{(backend, model): (mean usage, calls)}`` over the last ``recent`` successful image calls of each model."""
    seen: dict[tuple[str, str], list[Mapping]] = {}
    for call in reversed(calls):  # newest first
        if call.kind != "image" or call.outcome != OK or not call.usage or "output" not in call.usage:
            continue
        found = seen.setdefault((call.backend, call.model), [])
        if len(found) < recent:
            found.append(call.usage)
    return {key: (_mean(usages), len(usages)) for key, usages in seen.items()}


def _mean(usages: Sequence[Mapping]) -> dict:
    def mean_of(part: str) -> dict[str, float]:
        total: dict[str, float] = {}
        for usage in usages:
            for modality, count in (usage.get(part) or {}).items():
                total[modality] = total.get(modality, 0.0) + float(count or 0)
        return {modality: count / len(usages) for modality, count in total.items()}

    thinking = sum(float(u.get("thinking") or 0) for u in usages) / len(usages)
    return {"input": mean_of("input"), "output": mean_of("output"), "thinking": thinking}


def _unknown(model: str) -> OutputEstimate:
    reason = "not in the catalogue" if model_entry(model) is None else "no price in the catalogue"
    return OutputEstimate(None, f"unknown: model {model} {reason}", model=model)


def estimate_plan(plan: Plan, loaded: LoadedBrief, stored: Stored, *, image_maker: Maker, video_maker: Maker,
                  cached: CacheLookup, budget_usd: Optional[float] = None) -> Estimate:
    """The estimate of every out-of-date output of ``plan`` (see the module's docstring), parents first."""
    brief = loaded.brief
    outdated = dict(plan.outdated)
    observed = observed_usage(stored.calls)
    predicted: dict[str, dict] = {}  # what an outdated output's provenance will say after the run, when known
    outputs: dict[str, OutputEstimate] = {}
    for name in outputs_of(brief):
        if name not in outdated:
            continue
        kind = kind_of(name) if not is_placement(name) else placement_call(name, brief, video_maker)
        user_made = (name == "reference/scene_1" and brief.reference_image) or (
            kind == "sheet" and brief.subject(subject_of(name)).photo)
        if kind is None or kind in FINISHING or user_made:
            outputs[name] = OutputEstimate(0.0, NO_CALL)
            continue
        maker = video_maker if kind == "clip" else image_maker
        take = take_of(name, stored.records.get(name), stored.pending_takes)
        request = plan.requests.get(name) or _request_after(name, loaded, stored, outdated, predicted,
                                                             image_maker, video_maker, take)
        keys = request.call_keys if request is not None else []
        hits = [cached(key) for key in keys]
        if keys and all(hit is not None for hit in hits):
            outputs[name] = OutputEstimate(0.0, CACHED, model=maker.model)
            if len(hits) == 1 and (kind == "clip" or hits[0].get("pixels_sha256")):
                predicted[name] = {"sha256": hits[0].get("sha256"), "pixels_sha256": hits[0].get("pixels_sha256"),
                                   "take": take}
            continue
        calls = (len([hit for hit in hits if hit is None]) if keys
                 else (brief.takes_per_image if kind == "image" and not is_placement(name) else 1))
        if maker.backend in OFFLINE_BACKENDS:
            outputs[name] = OutputEstimate(0.0, OFFLINE, model=maker.model)
            continue
        one = _clip_call(name, loaded, maker) if kind == "clip" else _image_call(name, loaded, request, maker, observed)
        outputs[name] = OutputEstimate(None if one.usd is None else round(one.usd * calls, 8), one.basis, calls,
                                       maker.model)
    return Estimate(outputs, spend_of(stored.calls).spend_usd, budget_usd)


def _request_after(name: str, loaded: LoadedBrief, stored: Stored, outdated: Mapping[str, str],
                   predicted: Mapping[str, dict], image_maker: Maker, video_maker: Maker, take: int) -> Optional[Request]:
    """The request ``name`` will have once its out-of-date parents are made, if the cache tells what they will be."""
    parents = {}
    for parent in parents_of(name, loaded, image_maker):
        record = predicted.get(parent) if parent in outdated else stored.records.get(parent)
        if record is None:
            return None
        parents[parent] = Parent(parent, record)
    return current_request(name, loaded, parents, record=stored.records.get(name), notes=stored.notes.get(name, ()),
                           approved=stored.approvals.keys(), image_maker=image_maker, video_maker=video_maker,
                           take=take)


def _image_call(name: str, loaded: LoadedBrief, request: Optional[Request], maker: Maker,
                observed: Mapping[tuple[str, str], tuple[dict, int]]) -> OutputEstimate:
    """One call of ``name``'s image model: observed, else nominal, else unknown."""
    model = maker.model
    if (maker.backend, model) in observed:
        usage, count = observed[(maker.backend, model)]
        usd = price(model, usage)
        if usd is not None:
            return OutputEstimate(usd, f"observed (mean of {count} call{'s' if count != 1 else ''})", 1, model)
    brief = loaded.brief
    if is_placement(name):
        composed, shown_count = placement_frame_prompt(brief, name, reference_limits_for(maker)[1])
    elif kind_of(name) == "sheet":
        shown_count = 0
        composed = compose_sheet_prompt(brief, brief.subject(subject_of(name)))
    else:
        slot = Slot.parse(name)
        images, sheets = shown_to(loaded, slot, maker)
        shown_count = len(images) + len(sheets)
        composed = compose_prompt(brief, slot, images, sheets)
    prompt = str(request.candidates[0]["prompt"]) if request is not None else composed.text
    usage = nominal_usage(model, prompt_chars=len(prompt), reference_images=shown_count)
    usd = price(model, usage) if usage is not None else None
    return _unknown(model) if usd is None else OutputEstimate(usd, NOMINAL, 1, model)


def _clip_call(name: str, loaded: LoadedBrief, maker: Maker) -> OutputEstimate:
    """One clip: its seconds at the catalogue's price per second for the brief's resolution."""
    model = maker.model
    seconds = clip_seconds(model, loaded.brief.scene(scene_of(name)).duration_s)
    usd = price(model, {"seconds": seconds, "resolution": loaded.brief.video.resolution})
    return _unknown(model) if usd is None else OutputEstimate(usd, f"{seconds:g} s of video", 1, model)
