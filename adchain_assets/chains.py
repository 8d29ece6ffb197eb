"""The one asset factory: every image of every chain is an asset whose parents are its reference images.

``reference/scene_k``, ``start/scene_k`` and ``end/scene_k`` are built by the same function from the slot
alone; the edges come from :func:`adchain_assets.references.upstream`, so the lineage graph *is* the
reference chain. Slots beyond a brief's scene count yield nothing, and Dagster skips what depends on them.
"""


import base64
import dataclasses
import io
import warnings
from datetime import datetime, timezone
from typing import Callable, Iterable, Mapping, Optional

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Backoff,
    BetaWarning,
    Config,
    DataVersion,
    DynamicPartitionsDefinition,
    Failure,
    Jitter,
    MetadataValue,
    Output,
    RetryPolicy,
    asset,
)
from PIL import Image, ImageOps
from pydantic import Field

from adchain_assets.brief import BriefError, LoadedBrief
from adchain_assets.cache import GenerationCache
from adchain_assets.checks import (
    check_results,
    check_specs,
    consistency_score,
    provenance_sha256,
    score_image,
    slot_not_in_brief,
    summary,
)
from adchain_assets.features import FeatureStore
from adchain_assets.generators.base import GenerationError, ImageGenerator, ImageRequest, ReferenceImage
from adchain_assets.ledger import CallMeter, Ledger
from adchain_assets.outputs import Parent, Request, build_request, pixel_digest
from adchain_assets.prompts import compose_prompt
from adchain_assets.references import Slot, all_slots, shown_references, upstream
from adchain_assets.resources import CampaignBriefs, ImageModel
from adchain_assets.storage import CampaignFiles, StoredImage, png_size, sha256, write_atomically

campaigns = DynamicPartitionsDefinition(name="campaigns")

# Bump when a change to prompt composition or image handling changes what an unchanged brief produces.
IMAGE_CODE_VERSION = "1"
THUMBNAIL_PX = 192
MAX_INLINE_SIDE = 2048  # a reference image's longer side, as sent inline to the model
# Model calls across all runs share this pool; its limit is set in the instance's dagster.yaml.
MODEL_POOL = "image_model"
# After the SDK's own retries: a step that still failed on a transient fault gets two more chances, later.
STEP_RETRY = RetryPolicy(max_retries=2, delay=20, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
GROUPS = {"reference": "reference_images", "start": "start_frames", "end": "end_frames"}
_CHAIN_DESCRIPTIONS = {
    "reference": "Reference image of scene {k}: the scene's subjects as they must look in every frame.",
    "start": "First frame of scene {k}'s video clip.",
    "end": "Last frame of scene {k}'s video clip.",
}


USER_IMAGE_IS_FIXED = (
    "is the brief's own reference_image, used as is; it cannot be regenerated (change reference_image instead)"
)


class ImageRunConfig(Config):
    new_take: bool = Field(
        default=False,
        description="Make a new take of this image: the cache is bypassed and later runs keep the new take.",
    )


def op_name(slot: Slot) -> str:
    """Dagster's name for the step of an asset: its key path joined by ``__``."""
    return "__".join(slot.key_path)


def thumbnail_markdown(png: bytes, alt: str, max_px: int = THUMBNAIL_PX) -> str:
    """A small JPEG data URI, so the UI shows the image without serving files."""
    with Image.open(io.BytesIO(png)) as image:
        thumb = image.convert("RGB")
        thumb.thumbnail((max_px, max_px))
        buffer = io.BytesIO()
        thumb.save(buffer, "JPEG", quality=70, optimize=True)
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def user_image(loaded: LoadedBrief, slot: Slot, request: Request) -> StoredImage:
    """The brief's own ``reference_image``, converted to PNG as is: no model call."""
    source = loaded.resolve(loaded.brief.reference_image or "")
    raw = source.read_bytes()
    with Image.open(io.BytesIO(raw)) as image:
        image = ImageOps.exif_transpose(image)
        converted = image.convert("RGBA" if image.has_transparency_data else "RGB")
        buffer = io.BytesIO()
        converted.save(buffer, "PNG")
    png = buffer.getvalue()
    return StoredImage(
        png=png,
        provenance=_provenance(
            loaded, slot, png, request, backend="user", model="user", prompt="", references=[],
            latency_s=0.0, cost_usd=0.0, source={"path": loaded.brief.reference_image, "sha256": sha256(raw)},
        ),
    )


def inline_reference(png: bytes, max_side: int = MAX_INLINE_SIDE) -> bytes:
    """``png`` as it is sent to the model: at most ``max_side`` pixels on its longer side (a user's photo can
    be far larger than a request may carry inline); the stored image keeps every pixel."""
    with Image.open(io.BytesIO(png)) as image:
        if max(image.size) <= max_side:
            return png
        scaled = image.copy()
        scaled.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        scaled.save(buffer, "PNG")
        return buffer.getvalue()


def generated_image(
    loaded: LoadedBrief,
    slot: Slot,
    request: Request,
    parents: Mapping[Slot, StoredImage],
    generator: ImageGenerator,
    cache: GenerationCache,
    meter_for: Callable[[str], object],
    rank: Callable[[bytes], float],
    keep_candidate: Callable[[int, bytes], str],
) -> StoredImage:
    """Ask the model (or the cache) for ``slot``, showing it exactly the references its mode names.

    With ``takes_per_image`` N > 1 there are N candidate requests, asked one after the other inside this step's
    model-pool slot (so the pool's limit holds whatever the takes); the one ``rank`` scores highest is kept, and
    every candidate is saved by ``keep_candidate`` and listed in the provenance.
    """
    brief = loaded.brief
    shown = shown_references(slot, brief.reference_mode)
    prompt = compose_prompt(brief, slot, shown)
    take = int(request.candidates[0]["take"])
    base = ImageRequest(
        prompt=prompt,
        references=[ReferenceImage(asset=ref.key, png=inline_reference(parents[ref].png)) for ref in shown],
        aspect_ratio=brief.aspect_ratio,
        take=take,
    )
    generations = []
    try:
        for candidate, key in enumerate(request.candidate_fingerprints):
            one = dataclasses.replace(base, candidate=candidate)
            generations.append(cache.generate(generator, one, key=key, meter=meter_for(key)))
    except GenerationError as error:
        # Transient faults (the SDK's retries already spent) may be retried by the step's RetryPolicy; a
        # model's verdict (a safety block) is final and stops this image and everything downstream of it.
        raise Failure(
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
    return StoredImage(
        png=result.png,
        provenance=_provenance(
            loaded, slot, result.png, request, backend=result.backend, model=result.model,
            prompt=prompt.text,
            references=[{"asset": ref.key, "sha256": parents[ref].sha256} for ref in shown],
            latency_s=max(g.image.latency_s for g in generations),
            cost_usd=sum(g.image.cost_usd for g in generations),
            take=take, cache_hit=all(g.cache_hit for g in generations), **extra,
        ),
    )


def _provenance(loaded: LoadedBrief, slot: Slot, png: bytes, request: Request, *, backend: str, model: str,
                prompt: str, references: list, latency_s: float, cost_usd: float, take: int = 0,
                cache_hit: bool = False, **extra) -> dict:
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
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def held_call(ledger: Ledger, campaign: str, output: str, request: Request):
    """The ledger's final refusal of exactly this request, if the model gave one: it is not asked again."""
    return ledger.latest(campaign).refusal(output, request.call_keys)


def image_metadata(image: StoredImage) -> dict:
    record = image.provenance
    return {
        "preview": MetadataValue.md(thumbnail_markdown(image.png, f"{record['chain']}/scene_{record['scene']}")),
        "prompt": MetadataValue.text(record["prompt"] or "(user-provided image: no prompt)"),
        "references": MetadataValue.json(record["references"]),
        "backend": MetadataValue.text(record["backend"]),
        "model": MetadataValue.text(record["model"]),
        "cost_usd": MetadataValue.float(float(record["cost_usd"])),
        "latency_s": MetadataValue.float(float(record["latency_s"])),
        "take": MetadataValue.int(int(record["take"])),
        "size": MetadataValue.text(f"{record['width']}x{record['height']}"),
        "sha256": MetadataValue.text(record["sha256"]),
    }


def step_retry(delay_s: float = 20.0) -> RetryPolicy:
    """After the SDK's own retries: a step that still failed on a transient fault gets two more chances, later."""
    return RetryPolicy(max_retries=2, delay=delay_s, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def image_asset(slot: Slot, retry_policy: RetryPolicy = STEP_RETRY) -> AssetsDefinition:
    """The asset of one slot; its inputs are the slot's parents in the lineage graph."""
    parents = upstream(slot)

    @asset(
        key=AssetKey(slot.key_path),
        deps=[AssetKey(p.key_path) for p in parents],  # edges only: shown parents are read from storage
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
        context: AssetExecutionContext,
        config: ImageRunConfig,
        briefs: CampaignBriefs,
        image_model: ImageModel,
        cache: GenerationCache,
        files: CampaignFiles,
    ):
        campaign = context.partition_key
        try:
            loaded = briefs.for_run(campaign, context.run.run_id, context.run.tags)
        except BriefError as error:
            raise Failure(description=f"{slot.key}: {error}", allow_retries=False) from error
        if slot.scene > len(loaded.brief.scenes):
            context.log.info(f"{slot.key}: the brief has {len(loaded.brief.scenes)} scenes; nothing to make")
            yield from slot_not_in_brief(slot)  # a check's output is required even when the asset's is not
            return

        def image_of(other: Slot):
            stored = files.read_image(campaign, other)
            return stored.png if stored else None

        # Features are computed once per image and kept under its sha256; the anchor's and predecessor's are
        # read from there (their PNGs are not loaded), and the kept candidate is not analysed twice.
        features = FeatureStore(files.base)

        def score(png: bytes, sha: Optional[str] = None):
            return score_image(loaded, slot, png, image_of, store=features, sha=sha,
                               sha_of=lambda other: provenance_sha256(files.image_path(campaign, other)))

        user_made = slot == Slot("reference", 1) and loaded.brief.reference_image
        if user_made:
            if config.new_take:
                raise Failure(description=f"{slot.key} {USER_IMAGE_IS_FIXED}", allow_retries=False)
            image = user_image(loaded, slot, build_request(slot.key, loaded, {}))
        else:
            take = files.current_take(campaign, slot) + (1 if config.new_take else 0)
            shown = shown_references(slot, loaded.brief.reference_mode)
            parent_images = {}
            for parent in shown:  # only what the model is shown is read
                stored = files.read_image(campaign, parent)
                if stored is None:
                    raise Failure(description=f"{slot.key}: its reference {parent} is not made yet", allow_retries=False)
                parent_images[parent] = stored
            request = build_request(
                slot.key, loaded, {p.key: Parent(p.key, img.provenance) for p, img in parent_images.items()},
                image_maker=image_model.maker(), take=take,
            )
            ledger = Ledger(files.base_path)
            refused = held_call(ledger, campaign, slot.key, request)
            if refused is not None:
                raise Failure(
                    description=f"{slot.key}: held: this exact request was refused ({refused.outcome}) on"
                    f" {refused.created_at}; change its text or ask for a new take",
                    metadata={"asset": slot.key, "reason": refused.outcome, "retryable": False},
                    allow_retries=False,
                )
            try:
                generator = image_model.generator()
            except ValueError as error:  # a backend that cannot start, e.g. no API key
                raise Failure(description=f"{slot.key}: {error}", allow_retries=False) from error

            def meter_for(key: str) -> CallMeter:
                return CallMeter(ledger, campaign, slot.key, key, context.run.run_id)

            def rank(png: bytes) -> float:
                return consistency_score(score(png))

            def keep_candidate(candidate: int, png: bytes) -> str:
                relative = f"candidates/{slot.chain}/scene_{slot.scene}/take_{take}_candidate_{candidate}.png"
                write_atomically(files.campaign_dir(campaign) / relative, png)
                return relative

            image = generated_image(loaded, slot, request, parent_images, generator, cache, meter_for, rank, keep_candidate)
        scores = score(image.png, image.provenance["sha256"])
        image = StoredImage(image.png, {**image.provenance, "consistency": summary(scores)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BetaWarning)  # DataVersion on Output: beta, and what we want
            yield Output(image, metadata=image_metadata(image), data_version=DataVersion(image.sha256))
        yield from check_results(loaded.brief, scores)

    return _image


def build_image_assets(max_scenes: int, retry_policy: RetryPolicy = STEP_RETRY) -> list[AssetsDefinition]:
    """All three chains, ``max_scenes`` slots each."""
    return [image_asset(slot, retry_policy) for slot in all_slots(max_scenes)]


def image_asset_keys(max_scenes: int) -> list[AssetKey]:
    return [AssetKey(slot.key_path) for slot in all_slots(max_scenes)]


STORYBOARD_KEY = AssetKey("storyboard")


def run_selection(slots: Iterable[Slot]) -> list[AssetKey]:
    """What a campaign run materializes: these images, the clips made from their frames, the storyboard and
    the ad.

    Selecting only what the brief has (rather than every slot) keeps the sheet and the ad from being skipped
    for want of outputs that slots beyond the brief never yield.
    """
    slots = list(slots)
    clip_scenes = sorted({slot.scene for slot in slots if slot.chain in ("start", "end")})
    clips = [AssetKey(["clip", f"scene_{k}"]) for k in clip_scenes]
    ad = [AssetKey("ad")] if clips else []
    return [AssetKey(slot.key_path) for slot in slots] + [STORYBOARD_KEY] + clips + ad + [AssetKey("report")]


def new_take_config(slot: Slot) -> dict:
    """Run config asking for a new take of ``slot`` (what ``adchain regenerate`` and the UI's launchpad send)."""
    return {"ops": {op_name(slot): {"config": {"new_take": True}}}}

