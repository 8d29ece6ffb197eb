"""Each placement's clips, ad and storyboard: ``placements/clip/scene_k``, ``placements/ad`` and
``placements/storyboard``, one asset each whatever the brief's shapes (see :mod:`adchain_assets.defs.placements`).

A placement's clip is made by the video model from the placement's own frames when the model makes that shape
(the offline preview makes any; Veo 16:9 and 9:16). Otherwise it is cropped from the clip of the closest shape
the model makes (:func:`adchain_assets.plan.placements.clip_source`), with a window that holds every face
detected on that clip's first and last frames and centres the subjects (:mod:`adchain_assets.media.crop`); its
provenance names the clip it was cropped from (``cropped_from``) and the ``window``. A crop that cannot hold every
face fails that clip alone, naming the figures: it is logged, and recorded in the ledger as the final outcome of
its request (``CROP_CUTS_FACE``, no cost), so the plan holds it (``status`` says failed) until its request
changes, while the other clips and placements go on. A refused clip (a safety filter) is held the same way.

Each placement's ad is the master's assembly (title card, clips in order, cross-fades) at its size, and its
storyboard the start and end frame of every scene in its shape.
"""

from typing import Any, Optional

import dagster as dg

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.defs.clips import VIDEO_POOL, ad_provenance, clip_key, cut_ad, finish_of, poster_strip, write_ad
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.placements import PlacementChoice, chosen_placements, placement_key
from adchain_assets.defs.resources import CampaignBriefs, Storage, VideoModel
from adchain_assets.defs.steps import as_parents, held_call, now, pinned, step_retry, thumbnail_markdown
from adchain_assets.media.crop import CropError, Window, boxes_in_clip, crop_mp4, crop_window
from adchain_assets.media.mp4 import probe
from adchain_assets.media.storyboard import render_storyboard
from adchain_assets.plan.placements import (
    PLACEMENT_CHAINS,
    PLACEMENTS,
    clip_source,
    folder_of,
    placement_output,
    product_boxes,
    video_shapes,
)
from adchain_assets.plan.requests import AD, STORYBOARD, build_request, parents_of
from adchain_assets.providers.images.preview import PreviewGenerator
from adchain_assets.providers.video.base import VideoGenerationError, VideoRequest
from adchain_assets.store.budget import budgeted
from adchain_assets.store.files import StoredOutput
from adchain_assets.store.ledger import CallMeter
from adchain_assets.vision.features import FeatureStore

CROP_FAILED = "CROP_CUTS_FACE"  # the ledger's outcome for a crop that would cut a face
CROP_MAKER = {"backend": "adchain", "model": "crop"}


def face_boxes(frame: StoredOutput, store: FeatureStore) -> list[tuple[int, int, int, int]]:
    """Every face detected on a stored frame (none on an offline preview frame, which draws no faces)."""
    if frame.provenance.get("backend") == PreviewGenerator.backend:
        return []
    return [tuple(face.box) for face in store.faces(frame.data, frame.sha256)]  # type: ignore[misc]


def crop_of(shape: str, source: StoredOutput, frames: list[StoredOutput],
            store: FeatureStore) -> tuple[Window, int, tuple[int, int]]:
    """The window of ``shape`` in the ``source`` clip that keeps every face of its first and last ``frames`` (and
    centres them and the products the frames' checks found), the number of faces kept and the clip's size;
    :class:`CropError` when no window keeps every face."""
    info = probe(source.data)
    clip_size = (info.width, info.height)
    faces, keep = [], []
    for frame in frames:
        size = (int(frame.provenance["width"]), int(frame.provenance["height"]))
        faces += boxes_in_clip(face_boxes(frame, store), size, clip_size)
        keep += boxes_in_clip(product_boxes(frame.provenance), size, clip_size)
    return crop_window(clip_size, shape, faces, keep), len(faces), clip_size


def placement_clip_asset(scene: int, retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    key = placement_key(f"clip/scene_{scene}")

    @dg.asset(
        key=key,
        deps=[placement_key(f"{chain}/scene_{scene}") for chain in PLACEMENT_CHAINS] + [clip_key(scene)],
        partitions_def=campaigns,
        group_name=PLACEMENTS,
        output_required=False,
        pool=VIDEO_POOL,
        retry_policy=retry_policy,
        kinds={"video"},
        description=f"Scene {scene}'s clip in every placement: made from its frames, or cropped from the clip of the"
                    " closest shape the video model makes.",
    )
    def _clips(context: dg.AssetExecutionContext, placement_choice: PlacementChoice, briefs: CampaignBriefs,
               video_model: VideoModel, storage: Storage):
        campaign = context.partition_key
        loaded = pinned(context, briefs, key.to_user_string())
        brief = loaded.brief
        chosen = chosen_placements(context, loaded, placement_choice.placements)
        if scene > len(brief.scenes) or not chosen:
            return
        files, ledger = storage.files, storage.ledger
        maker = video_model.maker()
        makes = video_shapes(maker.backend, maker.model)
        budget = briefs.budget_of(loaded)
        done: dict[str, list[str]] = {"made": [], "unchanged": [], "failed": [], "waiting": []}
        # clips the model makes first: a crop's source may be one of them
        for shape in sorted(chosen, key=lambda s: clip_source(brief, s, makes) is not None):
            name = placement_output(shape, f"clip/scene_{scene}")
            parents = {p: files.read_output(campaign, p) for p in parents_of(name, loaded, video_maker=maker)}
            missing = [p for p, stored in parents.items() if stored is None]
            if missing:
                done["waiting"].append(f"{name}: {missing[0]} is not made yet")
                continue
            stored_parents: dict[str, StoredOutput] = parents  # type: ignore[assignment]
            request = build_request(name, loaded, as_parents(stored_parents), video_maker=maker)
            current = files.read_output(campaign, name)
            if current is not None and current.provenance.get("request_sha256") == request.fingerprint:
                done["unchanged"].append(name)
                continue
            refusal = held_call(ledger, campaign, name, request, budget)
            if refusal is not None:
                done["failed"].append(f"{name}: held: this exact request failed for good ({refusal.outcome})")
                continue
            meter = CallMeter(ledger, campaign, name, request.fingerprint, context.run.run_id)
            source = clip_source(brief, shape, makes)
            if source is None:
                record = generated_clip(loaded, name, shape, scene, stored_parents, request, video_model,
                                        budget, storage, meter, done)
            else:
                record = cropped_clip(loaded, name, shape, scene, stored_parents, request, storage, meter, done)
            if record is not None:
                mp4, provenance = record
                files.write_output(campaign, name, mp4, provenance)
                done["made"].append(name)
        for line in done["failed"] + done["waiting"]:
            context.log.error(line)
        metadata: dict[str, Any] = {label: dg.MetadataValue.json(names) for label, names in done.items()}
        yield dg.MaterializeResult(metadata=metadata)

    return _clips


def clip_provenance(loaded: LoadedBrief, name: str, shape: str, scene: int, mp4: bytes, request, **fields) -> dict:
    info = probe(mp4)
    return {
        "campaign": loaded.campaign, "asset": name, "placement": shape, "scene": scene, "width": info.width,
        "height": info.height, "duration_s": round(info.duration_s, 3), "frame_count": info.frame_count,
        "fps": info.fps, "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
        **fields,
    }


def generated_clip(loaded, name, shape, scene, frames, request, video_model, budget, storage, meter, done):
    """The video model's clip of a placement's frames: (mp4, provenance), or None when its request is refused."""
    brief = loaded.brief
    start, end = (frames[placement_output(shape, f"{chain}/scene_{scene}")] for chain in PLACEMENT_CHAINS)
    video_request = VideoRequest(
        prompt=request.material["prompt"], start_png=start.data, end_png=end.data, aspect_ratio=shape,
        duration_s=brief.scene(scene).duration_s, resolution=brief.video.resolution, audio=brief.video.audio,
    )
    try:
        generation = storage.cache.generate_video(budgeted(video_model.generator(), budget), video_request,
                                                  key=request.fingerprint, meter=meter)
    except VideoGenerationError as error:
        if error.retryable:  # the step's RetryPolicy resumes the stored operation; made clips are kept
            raise dg.Failure(description=f"{name}: {error}", metadata={"reason": error.reason},
                             allow_retries=True) from error
        done["failed"].append(f"{name}: {error}")
        return None
    except ValueError as error:  # a backend that cannot serve this brief, e.g. no key
        raise dg.Failure(description=f"{name}: {error}", allow_retries=False) from error
    video = generation.video
    return video.mp4, clip_provenance(
        loaded, name, shape, scene, video.mp4, request, backend=video.backend, model=video.model,
        prompt=video_request.prompt, inputs=[{"asset": n, "sha256": f.sha256} for n, f in frames.items()],
        requested_duration_s=video_request.duration_s, cache_hit=generation.cache_hit,
        latency_s=round(video.latency_s, 4), cost_usd=round(video.cost_usd, 6),
    )


def cropped_clip(loaded, name, shape, scene, parents, request, storage, meter, done):
    """A placement's clip cropped from another shape's clip: (mp4, provenance), or None when no window keeps every
    face (recorded as the request's final outcome)."""
    clip_name, start_name, end_name = parents
    source = parents[clip_name]
    try:
        window, faces, (width, height) = crop_of(shape, source, [parents[start_name], parents[end_name]],
                                                 storage.features)
    except CropError as error:
        meter(**CROP_MAKER, kind="video", attempt=1, outcome=CROP_FAILED, final=True, detail={"reason": str(error)})
        done["failed"].append(f"{name}: cannot crop it from {clip_name}: {error}")
        return None
    mp4, reused = storage.cache.remember(request.fingerprint, "crop.mp4", lambda: crop_mp4(source.data, window))
    return mp4, clip_provenance(
        loaded, name, shape, scene, mp4, request, **CROP_MAKER, cropped_from=clip_name,
        window={**window.to_json(), "of": f"{width}x{height}"},
        faces_kept=faces, inputs=[{"asset": n, "sha256": f.sha256} for n, f in parents.items()],
        cache_hit=reused, latency_s=0.0, cost_usd=0.0,
    )


def placement_ad_asset(max_scenes: int) -> dg.AssetsDefinition:
    key = placement_key(AD)

    @dg.asset(
        key=key,
        deps=[placement_key(f"clip/scene_{k}") for k in range(1, max_scenes + 1)],
        partitions_def=campaigns,
        group_name=PLACEMENTS,
        kinds={"video"},
        description=("Each placement's ad: its clips in order with the master's title card, cross-fades and finish (captions"
                     " in its safe area, end card, logo, sound; ad.srt beside it), at its size."),
    )
    def _ads(context: dg.AssetExecutionContext, placement_choice: PlacementChoice, briefs: CampaignBriefs, storage: Storage):
        campaign = context.partition_key
        loaded = pinned(context, briefs, key.to_user_string())
        brief = loaded.brief
        files = storage.files
        metadata: dict[str, Any] = {}
        made, kept, waiting = [], [], []
        for shape in chosen_placements(context, loaded, placement_choice.placements):
            name = placement_output(shape, AD)
            clips = {p: files.read_output(campaign, p) for p in parents_of(name, loaded)}
            missing = [p for p, clip in clips.items() if clip is None]
            if missing:
                waiting.append(f"{name}: {missing[0]} is not made")
                continue
            stored: dict[str, StoredOutput] = clips  # type: ignore[assignment]
            request = build_request(name, loaded, as_parents(stored))
            current = files.read_output(campaign, name)
            if current is not None and current.provenance.get("request_sha256") == request.fingerprint:
                kept.append(name)
                continue
            finish = finish_of(loaded, storage, campaign, list(stored.values()), shape)
            mp4, reused, info, details = cut_ad(storage, request, [c.data for c in stored.values()], finish,
                                                brief.title or None)
            provenance = {"placement": shape, **ad_provenance(campaign, name, loaded, request, stored, info, reused)}
            write_ad(files, campaign, name, mp4, provenance, finish, details)
            made.append(name)
            metadata[folder_of(shape)] = dg.MetadataValue.md(
                thumbnail_markdown(poster_strip([c.data for c in stored.values()]), name, max_px=256))
        for line in waiting:
            context.log.warning(line)
        return dg.MaterializeResult(metadata={"made": dg.MetadataValue.json(made),
                                              "unchanged": dg.MetadataValue.json(kept),
                                              "waiting": dg.MetadataValue.json(waiting), **metadata})

    return _ads


def placement_storyboard_asset(max_scenes: int) -> dg.AssetsDefinition:
    key = placement_key(STORYBOARD)

    @dg.asset(
        key=key,
        deps=[placement_key(f"{chain}/scene_{k}") for k in range(1, max_scenes + 1) for chain in PLACEMENT_CHAINS],
        partitions_def=campaigns,
        group_name=PLACEMENTS,
        kinds={"image"},
        description="Each placement's storyboard: every scene's start and end frame in its shape.",
    )
    def _storyboards(context: dg.AssetExecutionContext, placement_choice: PlacementChoice, briefs: CampaignBriefs,
                     storage: Storage):
        campaign = context.partition_key
        loaded = pinned(context, briefs, key.to_user_string())
        brief = loaded.brief
        files = storage.files
        metadata: dict[str, Any] = {}
        for shape in chosen_placements(context, loaded, placement_choice.placements):
            name = placement_output(shape, STORYBOARD)
            found = {p: files.read_output(campaign, p) for p in parents_of(name, loaded)}
            stored = {p: frame for p, frame in found.items() if frame is not None}  # a missing cell is drawn empty
            request = build_request(name, loaded, as_parents(stored))
            rows = [{chain: stored.get(placement_output(shape, f"{chain}/scene_{k}")) for chain in PLACEMENT_CHAINS}
                    for k in range(1, len(brief.scenes) + 1)]
            png, reused = storage.cache.remember(
                request.fingerprint, "storyboard.png",
                lambda: render_storyboard(f"{brief.title or 'storyboard'} ({shape})", shape, rows,
                                          chains=PLACEMENT_CHAINS))
            provenance = {
                "campaign": campaign, "asset": name, "placement": shape, "cache_hit": reused,
                "inputs": [{"asset": n, "sha256": frame.sha256} for n, frame in stored.items()],
                "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
            }
            files.write_output(campaign, name, png, provenance)
            metadata[folder_of(shape)] = dg.MetadataValue.md(thumbnail_markdown(png, name))
        return dg.MaterializeResult(metadata=metadata)

    return _storyboards


def build_placement_output_assets(max_scenes: int,
                                  retry_policy: Optional[dg.RetryPolicy] = None) -> list[dg.AssetsDefinition]:
    policy = retry_policy or step_retry()
    return [placement_clip_asset(k, policy) for k in range(1, max_scenes + 1)] + [
        placement_ad_asset(max_scenes), placement_storyboard_asset(max_scenes)]
