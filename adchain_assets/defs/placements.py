"""The placement frames: each scene's start and end frame in every extra shape the brief asks for.

One asset per slot, ``placements/start/scene_k`` and ``placements/end/scene_k`` (downstream of the master frame
``start/scene_k`` / ``end/scene_k`` and of the ``subjects`` sheets), makes that frame in every placement of the
brief (``placements/9x16/start/scene_k``, ...; :mod:`adchain_assets.plan.placements`), or in those the run names in
its ``placement_choice`` resource's config (``placements: ["9:16"]``, set in a launchpad, once for the whole run). The graph is the same
whatever shapes a brief asks for; the plan has one output per placement, and a step makes again only those whose
stored request is not the one the brief now asks for, so adding a placement makes only its frames.

Each frame is one image-model call (cached, metered; a request the model refused is held), shown the master frame
and, in ``sheets`` mode, the sheets of the scene's subjects. Its ``identity`` and ``product`` checks score it against
its master frame (:mod:`adchain_assets.vision.placements`). A model's final refusal of one placement frame is logged
and the others are made (what needs the refused frame waits, held); a transient fault fails the step, and its
RetryPolicy asks again (the frames already made are unchanged requests by then). Calls run one after the other in
one slot of the ``image_model`` pool: a 2-placement, 3-scene brief is 6 steps of 2 calls each.
"""

from typing import Any, Optional

import dagster as dg
from pydantic import Field

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.defs.checks import IDENTITY_CHECK, PRODUCT_CHECK
from adchain_assets.defs.images import MODEL_POOL, reference_record
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.resources import CampaignBriefs, ImageModel, Storage
from adchain_assets.defs.sheets import SHEETS_KEY
from adchain_assets.defs.steps import as_parents, held_call, now, paid_generator, pinned, step_retry, thumbnail_markdown
from adchain_assets.media.images import inline_reference, png_size
from adchain_assets.plan.placements import (
    PLACEMENT_CHAINS,
    PLACEMENTS,
    compose_placement_prompt,
    folder_of,
    placement_output,
    placements_named,
    shown_sheets,
)
from adchain_assets.plan.references import Slot
from adchain_assets.plan.requests import build_request, parents_of, pixel_digest, reference_limits_for
from adchain_assets.providers.images.base import GenerationError, ImageRequest, ReferenceImage
from adchain_assets.store.files import StoredOutput, sha256
from adchain_assets.store.ledger import CallMeter
from adchain_assets.vision.placements import score_placement
from adchain_assets.vision.scores import SubjectScore, summary

PLACEMENTS_HELP = (
    'Which placements to make, by shape (e.g. ["9:16"]); empty: every placement of the brief. Only those whose'
    " request changed are made again."
)


class PlacementChoice(dg.ConfigurableResource):
    """Which placements a run makes: configured at launch, once for the whole run (``resources: placement_choice:
    config: placements: ["9:16"]`` in a launchpad); by default every placement of the brief."""

    placements: list[str] = Field(default_factory=list, description=PLACEMENTS_HELP)


def placement_key(inner: str) -> dg.AssetKey:
    """``start/scene_2`` -> ``AssetKey(["placements", "start", "scene_2"])``: the asset of that slot in every
    placement."""
    return dg.AssetKey([PLACEMENTS, *inner.split("/")])


def placement_keys(max_scenes: int) -> list[dg.AssetKey]:
    """The placement frame and clip assets (what the report counts)."""
    return [placement_key(f"{inner}/scene_{k}") for inner in (*PLACEMENT_CHAINS, "clip")
            for k in range(1, max_scenes + 1)]


def chosen_placements(context: dg.AssetExecutionContext, loaded: LoadedBrief, names: list[str]) -> list[str]:
    """The brief's placements a step makes: those the run's ``placement_choice`` names (all when it names none);
    a shape the brief does not have fails the step, naming it."""
    chosen, unknown = placements_named(loaded.brief, names)
    if unknown:
        have = ", ".join(loaded.brief.placements) or "none"
        raise dg.Failure(description=f"{context.asset_key.to_user_string()}: placements {', '.join(unknown)} are not"
                         f" in the brief (its placements: {have})", allow_retries=False)
    return chosen


def placement_check_results(brief, scores: dict[str, list[SubjectScore]], note: str = "") -> list[dg.AssetCheckResult]:
    """The ``identity`` and ``product`` checks over every placement frame of the step: each subject of each
    placement against the master frame."""
    severity = dg.AssetCheckSeverity.ERROR if brief.checks.blocking else dg.AssetCheckSeverity.WARN
    results = []
    for check, kind in ((IDENTITY_CHECK, "character"), (PRODUCT_CHECK, "product")):
        metadata: dict[str, Any] = {}
        verdicts = []
        for shape, found in scores.items():
            for s in (s for s in found if s.kind == kind):
                metadata[f"{folder_of(shape)}_{s.subject}"] = dg.MetadataValue.json(
                    {"against": s.anchor, "passed": s.passed, "value": s.value, **s.detail})
                verdicts.append(s.passed)
        if not verdicts:
            metadata["note"] = dg.MetadataValue.text(note or f"no {kind} in this scene")
        results.append(dg.AssetCheckResult(check_name=check, passed=all(v is not False for v in verdicts),
                                           severity=severity, metadata=metadata))
    return results


def stored_scores(record: dict) -> list[SubjectScore]:
    """The scores a stored frame's provenance records (a frame kept as it is is not scored again)."""
    return [SubjectScore(subject, score.get("kind", ""), score.get("anchor", ""), score.get("passed"),
                         score.get("value"), {k: v for k, v in score.items() if k in ("note", "box")})
            for subject, score in (record.get("consistency") or {}).items()]


def placement_frame_asset(chain: str, scene: int, retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    slot = Slot(chain, scene)  # type: ignore[arg-type]
    key = placement_key(slot.key)

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(slot.key_path), SHEETS_KEY],
        partitions_def=campaigns,
        group_name=PLACEMENTS,
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec(IDENTITY_CHECK, asset=key, blocking=True,
                              description="Each character is the same person as in the master frame."),
            dg.AssetCheckSpec(PRODUCT_CHECK, asset=key, blocking=True,
                              description="Each product matches the master frame (local feature matching)."),
        ],
        pool=MODEL_POOL,
        retry_policy=retry_policy,
        kinds={"image"},
        description=f"{slot.key} in every placement of the brief: recomposed from the master frame in each shape.",
    )
    def _frames(context: dg.AssetExecutionContext, placement_choice: PlacementChoice, briefs: CampaignBriefs,
                image_model: ImageModel, storage: Storage):
        campaign = context.partition_key
        loaded = pinned(context, briefs, key.to_user_string())
        brief = loaded.brief
        chosen = chosen_placements(context, loaded, placement_choice.placements)
        if scene > len(brief.scenes) or not chosen:
            note = (f"the brief has no scene {scene}" if scene > len(brief.scenes) else "the brief has no placements")
            context.log.info(f"{key.to_user_string()}: {note}; nothing to make")
            yield from placement_check_results(brief, {}, note)  # a check's output is required even so
            return
        files, ledger = storage.files, storage.ledger
        maker = image_model.maker()
        budget = briefs.budget_of(loaded)
        master = files.read_output(campaign, slot.key)
        if master is None:
            raise dg.Failure(description=f"{key.to_user_string()}: its master frame {slot.key} is not made yet",
                             allow_retries=False)
        generator = None
        made, kept, refused = [], [], []
        scores: dict[str, list[SubjectScore]] = {}
        for shape in chosen:
            name = placement_output(shape, slot.key)
            shown = {}
            for parent in parents_of(name, loaded, maker):
                stored = master if parent == slot.key else files.read_output(campaign, parent)
                if stored is None:
                    raise dg.Failure(description=f"{name}: its reference {parent} is not made yet", allow_retries=False)
                shown[parent] = stored
            request = build_request(name, loaded, as_parents(shown), image_maker=maker)
            current = files.read_output(campaign, name)
            if current is not None and current.provenance.get("request_sha256") == request.fingerprint:
                kept.append(name)
                scores[shape] = stored_scores(dict(current.provenance))
                continue
            refusal = held_call(ledger, campaign, name, request, budget)
            if refusal is not None:
                refused.append(f"{name}: held: this exact request was refused ({refusal.outcome})")
                continue
            if generator is None:
                generator = paid_generator(image_model, budget, name)
            sheets = shown_sheets(brief, scene, reference_limits_for(maker)[1])
            prompt = compose_placement_prompt(brief, shape, slot, sheets)
            one = ImageRequest(
                prompt=prompt, aspect_ratio=shape, take=0,
                references=[ReferenceImage(asset=n, png=inline_reference(s.data)) for n, s in shown.items()],
            )
            call_key = request.call_keys[0]
            try:
                generation = storage.cache.generate(
                    generator, one, key=call_key, meter=CallMeter(ledger, campaign, name, call_key, context.run.run_id))
            except GenerationError as error:
                if error.retryable:  # the step's RetryPolicy asks again; frames made meanwhile are kept
                    raise dg.Failure(description=f"{name}: {error}", allow_retries=True,
                                     metadata={"reason": error.reason}) from error
                refused.append(f"{name}: {error}")
                continue
            png = generation.image.png
            found = score_placement(brief, scene, slot.key, png, master.sha256, lambda: master.data,
                                    store=storage.features, faces_drawn=generator.draws_faces)
            scores[shape] = found
            record = frame_provenance(loaded, shape, slot, png, request.fingerprint, shown, prompt.text, generation,
                                      found)
            files.write_output(campaign, name, png, record)
            made.append(name)
        for line in refused:
            context.log.error(line)
        metadata: dict[str, Any] = {"made": dg.MetadataValue.json(made), "unchanged": dg.MetadataValue.json(kept),
                                    "refused": dg.MetadataValue.json(refused)}
        for shape in chosen:
            stored = files.read_output(campaign, placement_output(shape, slot.key))
            if stored is not None:
                metadata[folder_of(shape)] = dg.MetadataValue.md(
                    thumbnail_markdown(stored.data, placement_output(shape, slot.key)))
        yield dg.MaterializeResult(metadata=metadata)
        yield from placement_check_results(brief, scores)

    return _frames


def frame_provenance(loaded: LoadedBrief, shape: str, slot: Slot, png: bytes, request_sha256: str,
                     shown: dict[str, StoredOutput], prompt: str, generation, scores: list[SubjectScore],
                     ) -> dict[str, Any]:
    """A placement frame's provenance: an image's fields (the CONTRACT's), and its placement."""
    width, height = png_size(png)
    image = generation.image
    return {
        "campaign": loaded.campaign, "placement": shape, "chain": slot.chain, "scene": slot.scene, "take": 0,
        "backend": image.backend, "model": image.model, "prompt": prompt,
        "references": [reference_record(name, stored) for name, stored in shown.items()],
        "sha256": sha256(png), "pixels_sha256": pixel_digest(png), "bytes": len(png), "width": width,
        "height": height, "cache_hit": generation.cache_hit, "latency_s": round(image.latency_s, 4),
        "cost_usd": round(image.cost_usd, 6), "request_sha256": request_sha256, "brief_sha256": loaded.sha256,
        "created_at": now(), "consistency": summary(scores),
    }


def build_placement_frame_assets(max_scenes: int,
                                 retry_policy: Optional[dg.RetryPolicy] = None) -> list[dg.AssetsDefinition]:
    policy = retry_policy or step_retry()
    return [placement_frame_asset(chain, k, policy) for chain in PLACEMENT_CHAINS for k in range(1, max_scenes + 1)]
