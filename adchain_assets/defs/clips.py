"""From frames to the ad: a clip per scene from its start and end frames, and the clips joined into the ad.

``clip/scene_k`` depends on ``start/scene_k`` and ``end/scene_k``; ``ad`` on every clip. A clip is made by
the video backend (the offline dissolve, or Veo with the start frame as first frame and the end frame as
last frame), answered from the generation cache when its frames, prompt and settings are unchanged.
"""

import io
import warnings
from typing import Optional

import dagster as dg
import numpy as np
from PIL import Image

from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.resources import CampaignBriefs, Storage, VideoModel
from adchain_assets.defs.steps import as_parents, held_call, load_parents, now, pinned, step_retry, thumbnail_markdown
from adchain_assets.media.ad import assemble_ad
from adchain_assets.media.mp4 import probe, read_frames
from adchain_assets.plan.calls import BUDGET
from adchain_assets.plan.requests import AD, AD_CROSSFADE_S, build_request, clip_output
from adchain_assets.providers.video.base import VideoGenerationError, VideoRequest
from adchain_assets.store.budget import budgeted
from adchain_assets.store.files import sha256
from adchain_assets.store.ledger import CallMeter

CLIP_CODE_VERSION = "1"
VIDEO_POOL = "video_model"
AD_KEY = dg.AssetKey("ad")


def clip_key(scene: int) -> dg.AssetKey:
    return dg.AssetKey(["clip", f"scene_{scene}"])


def poster(mp4: bytes) -> Image.Image:
    """The clip's first frame."""
    with read_frames(mp4) as (_, frames):
        return Image.fromarray(next(iter(frames)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def clip_asset(scene: int, retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    output = clip_output(scene)

    @dg.asset(
        key=clip_key(scene),
        deps=[dg.AssetKey(["start", f"scene_{scene}"]), dg.AssetKey(["end", f"scene_{scene}"])],
        partitions_def=campaigns,
        group_name="clips",
        output_required=False,
        code_version=CLIP_CODE_VERSION,
        pool=VIDEO_POOL,
        retry_policy=retry_policy,
        kinds={"video"},
        description=f"Scene {scene}'s video clip, from its start frame to its end frame.",
    )
    def _clip(context: dg.AssetExecutionContext, briefs: CampaignBriefs, video_model: VideoModel, storage: Storage):
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, output)
        brief = loaded.brief
        if scene > len(brief.scenes):
            return
        frames = load_parents(files, campaign, output, loaded)
        request = build_request(output, loaded, as_parents(frames), video_maker=video_model.maker())
        start, end = frames[f"start/scene_{scene}"], frames[f"end/scene_{scene}"]
        video_request = VideoRequest(
            prompt=request.material["prompt"],
            start_png=start.data,
            end_png=end.data,
            aspect_ratio=brief.aspect_ratio,
            duration_s=brief.scene(scene).duration_s,
            resolution=brief.video.resolution,
            audio=brief.video.audio,
        )
        ledger = storage.ledger
        budget = briefs.budget_of(loaded)
        refused = held_call(ledger, campaign, output, request, budget)
        if refused is not None:
            fix = "raise the budget" if refused.outcome == BUDGET else "change the scene or its frames"
            raise dg.Failure(description=f"{output}: held: this exact request was refused ({refused.outcome});"
                             f" {fix}", allow_retries=False)
        meter = CallMeter(ledger, campaign, output, request.fingerprint, context.run.run_id)
        try:
            generation = storage.cache.generate_video(budgeted(video_model.generator(), budget), video_request,
                                                      key=request.fingerprint, meter=meter)
        except VideoGenerationError as error:
            # A transient fault (the backend's retries spent, a poll deadline) may be retried by the step's
            # RetryPolicy, which resumes the stored operation; a filter or an operation error is final.
            raise dg.Failure(description=f"{output}: {error}",
                             metadata={"reason": error.reason, "retryable": error.retryable},
                             allow_retries=error.retryable) from error
        except ValueError as error:  # a backend that cannot serve this brief, e.g. no key or an aspect ratio
            raise dg.Failure(description=f"{output}: {error}", allow_retries=False) from error
        video = generation.video
        provenance = {
            "campaign": campaign, "asset": output, "scene": scene,
            "backend": video.backend, "model": video.model, "prompt": video_request.prompt,
            "inputs": [{"asset": name, "sha256": frame.sha256} for name, frame in frames.items()],
            "width": video.width, "height": video.height,
            "duration_s": round(video.duration_s, 3), "requested_duration_s": video_request.duration_s,
            "frame_count": video.frame_count, "fps": video.fps, "cache_hit": generation.cache_hit,
            "latency_s": round(video.latency_s, 4), "cost_usd": round(video.cost_usd, 6),
            "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
        }
        path = files.write_output(campaign, output, video.mp4, provenance)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            yield dg.MaterializeResult(
                metadata={
                    "poster": dg.MetadataValue.md(thumbnail_markdown(_png(poster(video.mp4)), output)),
                    "duration_s": dg.MetadataValue.float(provenance["duration_s"]),
                    "size": dg.MetadataValue.text(f"{video.width}x{video.height}"),
                    "backend": dg.MetadataValue.text(video.backend),
                    "model": dg.MetadataValue.text(video.model),
                    "cost_usd": dg.MetadataValue.float(provenance["cost_usd"]),
                    "cache_hit": dg.MetadataValue.bool(generation.cache_hit),
                    "path": dg.MetadataValue.path(str(path)),
                },
                data_version=dg.DataVersion(sha256(video.mp4)),
            )

    return _clip


def poster_strip(mp4s: list[bytes], height: int = 96) -> bytes:
    """The clips' first frames side by side: the ad at a glance."""
    frames = [poster(mp4) for mp4 in mp4s]
    scaled = [frame.resize((max(1, round(frame.width * height / frame.height)), height)) for frame in frames]
    strip = Image.fromarray(np.hstack([np.asarray(frame) for frame in scaled]))
    return _png(strip)


def build_ad_asset(max_scenes: int) -> dg.AssetsDefinition:
    @dg.asset(
        key=AD_KEY,
        deps=[clip_key(k) for k in range(1, max_scenes + 1)],
        partitions_def=campaigns,
        group_name="clips",
        kinds={"video"},
        description="The campaign's ad: every scene's clip in order, with a short cross-fade between scenes.",
    )
    def ad(context: dg.AssetExecutionContext, briefs: CampaignBriefs, storage: Storage) -> dg.MaterializeResult:
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, AD)
        brief = loaded.brief
        stored = load_parents(files, campaign, AD, loaded)
        request = build_request(AD, loaded, as_parents(stored))
        clips = [clip.data for clip in stored.values()]
        made = {}

        def assemble() -> bytes:
            mp4, made["info"] = assemble_ad(clips, crossfade_s=AD_CROSSFADE_S, title=brief.title or None)
            return mp4

        mp4, reused = storage.cache.remember(request.fingerprint, "ad.mp4", assemble)
        info = made.get("info") or probe(mp4)
        spend = storage.ledger.spend(campaign)
        provenance = {
            "campaign": campaign, "asset": AD,
            "clips": [{"asset": name, "sha256": clip.sha256} for name, clip in stored.items()],
            "width": info.width, "height": info.height, "duration_s": round(info.duration_s, 3),
            "frame_count": info.frame_count, "fps": info.fps, "crossfade_s": AD_CROSSFADE_S,
            "title": brief.title, "cache_hit": reused,
            "campaign_cost_usd": spend.spend_usd,
            "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
        }
        path = files.write_output(campaign, AD, mp4, provenance)
        return dg.MaterializeResult(
            metadata={
                "posters": dg.MetadataValue.md(thumbnail_markdown(poster_strip(clips), f"ad of {campaign}", max_px=256)),
                "duration_s": dg.MetadataValue.float(provenance["duration_s"]),
                "clips": dg.MetadataValue.int(len(clips)),
                "campaign_cost_usd": dg.MetadataValue.float(spend.spend_usd),
                "path": dg.MetadataValue.path(str(path)),
            },
            data_version=dg.DataVersion(sha256(mp4)),
        )

    return ad


def build_clip_assets(max_scenes: int, retry_policy: Optional[dg.RetryPolicy] = None) -> list[dg.AssetsDefinition]:
    policy = retry_policy or step_retry()
    return [clip_asset(k, policy) for k in range(1, max_scenes + 1)] + [build_ad_asset(max_scenes)]
