"""The one asset factory of the three chains: every image is an asset whose parents are its reference images.

``reference/scene_k``, ``start/scene_k`` and ``end/scene_k`` are built by the same function from the slot
alone; the edges come from :func:`adchain_assets.plan.references.upstream`, so the lineage graph *is* the
reference chain. Slots beyond a brief's scene count yield nothing, and Dagster skips what depends on them.

Beyond a new take, an image's run config may carry a director's note (an edit of the current take), pick an
earlier take, or sign the image off; :mod:`adchain_assets.defs.direction` does those. An approved image is kept as
stored by every run, and every picture a step makes is kept among the image's takes.
"""

import dataclasses
import warnings
from typing import Callable, Optional

import dagster as dg
from pydantic import Field

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.defs.checks import check_results, check_specs, slot_not_in_brief
from adchain_assets.defs.direction import check_config, directed_take, keep_approved, sign_off
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.resources import CampaignBriefs, ImageModel, Storage
from adchain_assets.defs.sheets import SHEETS_KEY
from adchain_assets.defs.steps import held_call, now, paid_generator, pinned, step_retry, thumbnail_markdown
from adchain_assets.media.images import inline_reference, png_size, to_png
from adchain_assets.plan.calls import BUDGET
from adchain_assets.plan.prompts import ComposedPrompt
from adchain_assets.plan.references import SHEETS, Slot, all_slots, sheet_output, upstream
from adchain_assets.plan.requests import (
    Direction,
    Parent,
    Request,
    build_request,
    image_prompt,
    kind_of,
    pixel_digest,
    shown_to,
    subject_of,
)
from adchain_assets.plan.review import direction_fields
from adchain_assets.providers.images.base import GenerationError, ImageGenerator, ImageRequest, ReferenceImage
from adchain_assets.store.cache import GenerationCache
from adchain_assets.store.files import StoredOutput, sha256, write_atomically
from adchain_assets.store.ledger import CallMeter
from adchain_assets.vision.scores import consistency_score, provenance_sha256, score_image, summary

# Bump when a change to prompt composition or image handling changes what an unchanged brief produces.
IMAGE_CODE_VERSION = "1"
# Model calls across all runs share this pool; its limit is set in the instance's dagster.yaml.
MODEL_POOL = "image_model"
GROUPS = {"reference": "reference_images", "start": "start_frames", "end": "end_frames"}
_CHAIN_DESCRIPTIONS = {
    "reference": "Reference image of scene {k}: the scene's subjects as they must look in every frame.",
    "start": "First frame of scene {k}'s video clip.",
    "end": "Last frame of scene {k}'s video clip.",
}
USER_IMAGE_IS_FIXED = (
    "is the brief's own reference_image, used as is; it cannot be regenerated (change reference_image instead)"
)


class ImageRunConfig(dg.Config):
    new_take: bool = Field(
        default=False,
        description="Make a new take of this image: the cache is bypassed and later runs keep the new take.",
    )
    note: str = Field(
        default="",
        description="A director's note, e.g. 'make her smile': the next take is the model's edit of the current"
        " take, changing what the note says and keeping the rest. The note stays with the image as direction"
        " (adchain regenerate --clear-notes drops it).",
    )
    pick_take: Optional[int] = Field(
        default=None,
        description="Make this earlier take current again (adchain takes lists them): its kept bytes, with no"
        " model call when it was made for the brief as it is now.",
    )
    approve: bool = Field(
        default=False,
        description="Sign off this image as it is stored: no run re-makes it until it is unapproved, and what"
        " follows it is made from it. No model call.",
    )
    unapprove: bool = Field(default=False, description="Withdraw this image's sign-off, then make it as usual.")
    by: str = Field(default="", description="Who approves or unapproves, recorded with the sign-off.")


def op_name(slot: Slot) -> str:
    """Dagster's name for the step of an asset: its key path joined by ``__``."""
    return "__".join(slot.key_path)


def user_image(loaded: LoadedBrief, slot: Slot, request: Request) -> StoredOutput:
    """The brief's own ``reference_image``, converted to PNG as is: no model call."""
    raw = loaded.resolve(loaded.brief.reference_image or "").read_bytes()
    png = to_png(raw)
    return StoredOutput(
        data=png,
        provenance=_provenance(
            loaded, slot, png, request, backend="user", model="user", prompt="", references=[],
            latency_s=0.0, cost_usd=0.0, source={"path": loaded.brief.reference_image, "sha256": sha256(raw)},
        ),
    )


def reference_record(name: str, stored: StoredOutput) -> dict:
    """How a provenance lists one image the model was shown: an image of a chain by its asset key, a sheet by
    the sheets' asset and its subject."""
    if kind_of(name) == "sheet":
        return {"asset": SHEETS, "subject": subject_of(name), "sha256": stored.sha256}
    return {"asset": name, "sha256": stored.sha256}


def generated_image(
    loaded: LoadedBrief,
    slot: Slot,
    request: Request,
    prompt: ComposedPrompt,
    shown: list[tuple[str, StoredOutput]],
    generator: ImageGenerator,
    cache: GenerationCache,
    meter_for: Callable[[str], object],
    rank: Callable[[bytes], float],
    keep_candidate: Callable[[int, bytes], str],
    direction: Optional[Direction] = None,
    edit_png: Optional[bytes] = None,
) -> StoredOutput:
    """Ask the model (or the cache) for ``slot`` with ``prompt``, showing it ``shown`` (output name and stored
    image, in order), after the take an edit starts from (``edit_png``) when ``direction`` is an edit.

    With ``takes_per_image`` N > 1 there are N candidate requests, asked one after the other inside this step's
    model-pool slot (so the pool's limit holds whatever the takes); the one ``rank`` scores highest is kept, and
    every candidate is saved by ``keep_candidate`` and listed in the provenance.
    """
    brief = loaded.brief
    take = int(request.candidates[0]["take"])
    references = [ReferenceImage(asset=name, png=inline_reference(stored.data)) for name, stored in shown]
    recorded = [reference_record(name, stored) for name, stored in shown]
    edit = direction.edit if direction is not None else None
    if edit is not None:
        assert edit_png is not None, "an edit needs the take it starts from"
        references.insert(0, ReferenceImage(asset=f"{slot.key} take {edit.take}", png=inline_reference(edit_png)))
        recorded.insert(0, {"asset": slot.key, "sha256": edit.sha256, "take": edit.take})
    base = ImageRequest(prompt=prompt, references=references, aspect_ratio=brief.aspect_ratio, take=take)
    generations = []
    try:
        for candidate, key in enumerate(request.candidate_fingerprints):
            one = dataclasses.replace(base, candidate=candidate)
            generations.append(cache.generate(generator, one, key=key, meter=meter_for(key)))
    except GenerationError as error:
        # Transient faults (the SDK's retries already spent) may be retried by the step's RetryPolicy; a
        # model's verdict (a safety block) is final and stops this image and everything downstream of it.
        raise dg.Failure(
            description=f"{slot.key}: {error}",
            metadata={"asset": slot.key, "reason": error.reason, "retryable": error.retryable},
            allow_retries=error.retryable,
        ) from error
    extra: dict = {}
    best = 0
    if len(generations) > 1:
        scores = [rank(g.image.png) for g in generations]
        best = max(range(len(scores)), key=lambda c: scores[c])
        extra["candidates"] = [
            {
                "candidate": c, "sha256": sha256(g.image.png), "score": round(scores[c], 4),
                "kept": c == best, "cache_hit": g.cache_hit, "cost_usd": round(g.image.cost_usd, 6),
                "request_sha256": g.key, "path": keep_candidate(c, g.image.png),
            }
            for c, g in enumerate(generations)
        ]
    result = generations[best].image
    return StoredOutput(
        data=result.png,
        provenance=_provenance(
            loaded, slot, result.png, request, backend=result.backend, model=result.model,
            prompt=prompt.text,
            references=recorded,
            latency_s=max(g.image.latency_s for g in generations),
            cost_usd=sum(g.image.cost_usd for g in generations),
            take=take, cache_hit=all(g.cache_hit for g in generations), direction=direction, **extra,
        ),
    )


def _provenance(loaded: LoadedBrief, slot: Slot, png: bytes, request: Request, *, backend: str, model: str,
                prompt: str, references: list, latency_s: float, cost_usd: float, take: int = 0,
                cache_hit: bool = False, direction: Optional[Direction] = None, **extra) -> dict:
    width, height = png_size(png)
    return {
        "campaign": loaded.campaign,
        "chain": slot.chain,
        "scene": slot.scene,
        "take": take,
        "backend": backend,
        "model": model,
        "prompt": prompt,
        "references": references,
        "sha256": sha256(png),
        "pixels_sha256": pixel_digest(png),
        "bytes": len(png),
        "width": width,
        "height": height,
        "cache_hit": cache_hit,
        "latency_s": round(latency_s, 4),
        "cost_usd": round(cost_usd, 6),
        "request_sha256": request.fingerprint,
        "brief_sha256": loaded.sha256,
        "created_at": now(),
        **direction_fields(direction),
        **extra,
    }


def image_metadata(image: StoredOutput) -> dict:
    record = image.provenance
    return {
        "preview": dg.MetadataValue.md(thumbnail_markdown(image.data, f"{record['chain']}/scene_{record['scene']}")),
        "prompt": dg.MetadataValue.text(record["prompt"] or "(user-provided image: no prompt)"),
        "references": dg.MetadataValue.json(record["references"]),
        "backend": dg.MetadataValue.text(record["backend"]),
        "model": dg.MetadataValue.text(record["model"]),
        "cost_usd": dg.MetadataValue.float(float(record["cost_usd"])),
        "latency_s": dg.MetadataValue.float(float(record["latency_s"])),
        "take": dg.MetadataValue.int(int(record["take"])),
        "size": dg.MetadataValue.text(f"{record['width']}x{record['height']}"),
        "sha256": dg.MetadataValue.text(record["sha256"]),
        **({"note": dg.MetadataValue.text(record["note"])} if record.get("note") else {}),
        **({"edited_from": dg.MetadataValue.text(record["edited_from"])} if record.get("edited_from") else {}),
    }


def approval_metadata(approval) -> dict:
    return {"approved": dg.MetadataValue.text(f"by {approval.by} on {approval.at}")}


def image_asset(slot: Slot, retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    """The asset of one slot; its inputs are the slot's parents in the lineage graph."""
    parents = upstream(slot)

    @dg.asset(
        key=dg.AssetKey(slot.key_path),
        # Edges only: what the model is shown is read from storage. Every image may be shown the sheets.
        deps=[dg.AssetKey(p.key_path) for p in parents] + [SHEETS_KEY],
        partitions_def=campaigns,
        group_name=GROUPS[slot.chain],
        io_manager_key="image_storage",
        output_required=False,
        check_specs=check_specs(slot),
        code_version=IMAGE_CODE_VERSION,
        pool=MODEL_POOL,
        retry_policy=retry_policy,
        kinds={"image"},
        description=_CHAIN_DESCRIPTIONS[slot.chain].format(k=slot.scene),
    )
    def _image(
        context: dg.AssetExecutionContext,
        config: ImageRunConfig,
        briefs: CampaignBriefs,
        image_model: ImageModel,
        storage: Storage,
    ):
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, slot.key)
        if slot.scene > len(loaded.brief.scenes):
            context.log.info(f"{slot.key}: the brief has {len(loaded.brief.scenes)} scenes; nothing to make")
            yield from slot_not_in_brief(slot)  # a check's output is required even when the asset's is not
            return

        def image_of(other: str) -> Optional[bytes]:
            stored = files.read_output(campaign, other)
            return stored.data if stored else None

        # Features are computed once per image and kept under its sha256; the anchor's and predecessor's are
        # read from there (their PNGs are not loaded), and the kept candidate is not analysed twice.
        features = storage.features
        user_made = slot == Slot("reference", 1) and bool(loaded.brief.reference_image)
        generator: Optional[ImageGenerator] = None

        def score(png: bytes, sha: Optional[str] = None):
            return score_image(loaded, slot, png, image_of, store=features, sha=sha,
                               sha_of=lambda other: provenance_sha256(files.output_path(campaign, other)),
                               faces_drawn=user_made or generator is None or generator.draws_faces)

        check_config(config, slot.key)
        approval = sign_off(context, storage, campaign, slot.key, config)
        directed = None
        if approval is not None:  # signed off: kept as stored by every run, and what follows is made from it
            image = keep_approved(context, storage, campaign, slot.key, approval, config)
            try:
                generator = image_model.generator()  # only to score it as its backend draws (no call)
            except ValueError:
                pass
        elif user_made:
            if config.new_take or config.note or config.pick_take is not None:
                raise dg.Failure(description=f"{slot.key} {USER_IMAGE_IS_FIXED}", allow_retries=False)
            image = user_image(loaded, slot, build_request(slot.key, loaded, {}))
        else:
            maker = image_model.maker()
            images, sheets = shown_to(loaded, slot, maker)
            shown = []
            for name in [p.key for p in images] + [sheet_output(s) for s in sheets]:  # only what is shown is read
                stored = files.read_output(campaign, name)
                if stored is None:
                    raise dg.Failure(description=f"{slot.key}: its reference {name} is not made yet",
                                     allow_retries=False)
                shown.append((name, stored))
            parents = {name: Parent(name, img.provenance) for name, img in shown}
            directed = directed_take(context, storage, loaded, slot.key, config, parents, maker)
            take = directed.take
            request = build_request(slot.key, loaded, parents, image_maker=maker, take=take,
                                    direction=directed.direction)
            prompt = image_prompt(loaded, slot, maker, directed.direction)
            ledger = storage.ledger
            budget = briefs.budget_of(loaded)
            refused = None if directed.restored is not None else held_call(ledger, campaign, slot.key, request, budget)
            if refused is not None:
                fix = "raise the budget" if refused.outcome == BUDGET else "change its text or ask for a new take"
                raise dg.Failure(
                    description=f"{slot.key}: held: this exact request was refused ({refused.outcome}) on"
                    f" {refused.created_at}; {fix}",
                    metadata={"asset": slot.key, "reason": refused.outcome, "retryable": False},
                    allow_retries=False,
                )
            generator = paid_generator(image_model, budget, slot.key)

            def meter_for(key: str) -> CallMeter:
                return CallMeter(ledger, campaign, slot.key, key, context.run.run_id)

            def rank(png: bytes) -> float:
                return consistency_score(score(png))

            def keep_candidate(candidate: int, png: bytes) -> str:
                relative = f"candidates/{slot.chain}/scene_{slot.scene}/take_{take}_candidate_{candidate}.png"
                write_atomically(files.campaign_dir(campaign) / relative, png)
                return relative

            if directed.restored is not None:
                image = directed.restored
            else:
                image = generated_image(loaded, slot, request, prompt, shown, generator, storage.cache, meter_for,
                                        rank, keep_candidate, directed.direction, directed.edit_png)
        scores = score(image.data, image.provenance["sha256"])
        metadata = {}
        if approval is not None:  # the approved record stays exactly as it was signed off
            metadata = approval_metadata(approval)
        else:
            image = StoredOutput(image.data, {**image.provenance, "consistency": summary(scores)})
        if directed is not None:
            storage.takes.keep(campaign, slot.key, image)  # before the output: the current take is always kept
            directed.settle(storage, campaign, slot.key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)  # DataVersion on Output: beta, and what we want
            yield dg.Output(image, metadata={**image_metadata(image), **metadata},
                            data_version=dg.DataVersion(image.sha256))
        yield from check_results(loaded.brief, scores)

    return _image


def build_image_assets(max_scenes: int, retry_policy: Optional[dg.RetryPolicy] = None) -> list[dg.AssetsDefinition]:
    """All three chains, ``max_scenes`` slots each."""
    policy = retry_policy or step_retry()
    return [image_asset(slot, policy) for slot in all_slots(max_scenes)]


def image_asset_keys(max_scenes: int) -> list[dg.AssetKey]:
    return [dg.AssetKey(slot.key_path) for slot in all_slots(max_scenes)]


def new_take_config(slot: Slot) -> dict:
    """Run config asking for a new take of ``slot`` (what ``adchain regenerate`` and the UI's launchpad send)."""
    return {"ops": {op_name(slot): {"config": {"new_take": True}}}}


def image_run_config(slot: Slot, **config) -> dict:
    """Run config of ``slot``'s step: ``note=...`` (an edit), ``pick_take=N``, ``approve=True``, ... (what
    ``adchain regenerate --note`` and ``adchain pick`` send, and what the UI's launchpad shows)."""
    return {"ops": {op_name(slot): {"config": config}}}
