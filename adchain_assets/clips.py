"""From frames to the ad: a clip per scene from its start and end frames, and the clips joined into the ad.

``clip/scene_k`` depends on ``start/scene_k`` and ``end/scene_k``; ``ad`` on every clip. A clip is made by
the video backend (the offline dissolve, or Veo with the start frame as first frame and the end frame as
last frame), answered from the generation cache when its frames, prompt and settings are unchanged.
"""

import io
import json
import warnings
from datetime import datetime, timezone

import numpy as np
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    BetaWarning,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from PIL import Image

from adchain_assets.cache import GenerationCache
from adchain_assets.chains import STEP_RETRY, campaigns, thumbnail_markdown
from adchain_assets.prompts import compose_clip_prompt
from adchain_assets.report import campaign_spend
from adchain_assets.resources import CampaignBriefs, VideoModel
from adchain_assets.storage import CampaignFiles, StoredImage, sha256, write_atomically
from adchain_assets.video.ad import assemble_ad
from adchain_assets.video.base import VideoGenerationError, VideoRequest, read_frames

CLIP_CODE_VERSION = "1"
VIDEO_POOL = "video_model"
AD_KEY = AssetKey("ad")
AD_CROSSFADE_S = 0.5


def clip_key(scene: int) -> AssetKey:
    return AssetKey(["clip", f"scene_{scene}"])


def poster(mp4: bytes) -> Image.Image:
    """The clip's first frame."""
    with read_frames(mp4) as (_, frames):
        return Image.fromarray(next(iter(frames)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _write_with_provenance(files: CampaignFiles, campaign: str, name: str, mp4: bytes, provenance: dict) -> str:
    path = files.campaign_dir(campaign) / f"{name}.mp4"
    write_atomically(path.with_suffix(".json"), json.dumps(provenance, indent=2).encode() + b"\n")
    write_atomically(path, mp4)
    return str(path)


def clip_asset(scene: int):
    @asset(
        key=clip_key(scene),
        ins={"start": AssetIn(key=AssetKey(["start", f"scene_{scene}"])), "end": AssetIn(key=AssetKey(["end", f"scene_{scene}"]))},
        partitions_def=campaigns,
        group_name="clips",
        output_required=False,
        code_version=CLIP_CODE_VERSION,
        pool=VIDEO_POOL,
        retry_policy=STEP_RETRY,
        kinds={"video"},
        description=f"Scene {scene}'s video clip, from its start frame to its end frame.",
    )
    def _clip(
        context: AssetExecutionContext,
        briefs: CampaignBriefs,
        video_model: VideoModel,
        cache: GenerationCache,
        files: CampaignFiles,
        start: StoredImage,
        end: StoredImage,
    ):
        campaign = context.partition_key
        brief = briefs.load(campaign).brief
        if scene > len(brief.scenes):
            return
        request = VideoRequest(
            prompt=compose_clip_prompt(brief, scene),
            start_png=start.png,
            end_png=end.png,
            aspect_ratio=brief.aspect_ratio,
            duration_s=brief.scene(scene).duration_s,
            resolution=brief.video.resolution,
            audio=brief.video.audio,
        )
        key = f"clip/scene_{scene}"
        try:
            generation = cache.generate_video(video_model.generator(), request)
        except VideoGenerationError as error:
            raise Failure(description=f"{key}: {error}", metadata={"reason": error.reason}, allow_retries=False) from error
        except ValueError as error:  # a backend that cannot serve this brief, e.g. no key or an aspect ratio
            raise Failure(description=f"{key}: {error}", allow_retries=False) from error
        video = generation.video
        provenance = {
            "campaign": campaign, "asset": key, "scene": scene,
            "backend": video.backend, "model": video.model, "prompt": request.prompt,
            "inputs": [{"asset": f"start/scene_{scene}", "sha256": start.sha256}, {"asset": f"end/scene_{scene}", "sha256": end.sha256}],
            "sha256": sha256(video.mp4), "width": video.width, "height": video.height,
            "duration_s": round(video.duration_s, 3), "requested_duration_s": request.duration_s,
            "frame_count": video.frame_count, "fps": video.fps, "cache_hit": generation.cache_hit,
            "latency_s": round(video.latency_s, 4), "cost_usd": round(video.cost_usd, 6),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        path = _write_with_provenance(files, campaign, f"clip/scene_{scene}", video.mp4, provenance)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BetaWarning)
            yield MaterializeResult(
                metadata={
                    "poster": MetadataValue.md(thumbnail_markdown(_png(poster(video.mp4)), key)),
                    "duration_s": MetadataValue.float(provenance["duration_s"]),
                    "size": MetadataValue.text(f"{video.width}x{video.height}"),
                    "backend": MetadataValue.text(video.backend),
                    "model": MetadataValue.text(video.model),
                    "cost_usd": MetadataValue.float(provenance["cost_usd"]),
                    "cache_hit": MetadataValue.bool(generation.cache_hit),
                    "path": MetadataValue.path(path),
                },
                data_version=DataVersion(provenance["sha256"]),
            )

    return _clip


def poster_strip(mp4s: list[bytes], height: int = 96) -> bytes:
    """The clips' first frames side by side: the ad at a glance."""
    frames = [poster(mp4) for mp4 in mp4s]
    scaled = [frame.resize((max(1, round(frame.width * height / frame.height)), height)) for frame in frames]
    strip = Image.fromarray(np.hstack([np.asarray(frame) for frame in scaled]))
    return _png(strip)


def build_ad_asset(max_scenes: int):
    @asset(
        key=AD_KEY,
        deps=[clip_key(k) for k in range(1, max_scenes + 1)],
        partitions_def=campaigns,
        group_name="clips",
        kinds={"video"},
        description="The campaign's ad: every scene's clip in order, with a short cross-fade between scenes.",
    )
    def ad(context: AssetExecutionContext, briefs: CampaignBriefs, files: CampaignFiles) -> MaterializeResult:
        campaign = context.partition_key
        brief = briefs.load(campaign).brief
        clips, inputs = [], []
        for scene in range(1, len(brief.scenes) + 1):
            path = files.campaign_dir(campaign) / "clip" / f"scene_{scene}.mp4"
            if not path.exists():
                raise Failure(description=f"ad: clip/scene_{scene} is not made yet; materialize it first")
            mp4 = path.read_bytes()
            record = json.loads(path.with_suffix(".json").read_text())
            if record.get("sha256") != sha256(mp4):
                raise Failure(description=f"ad: clip/scene_{scene} does not match its provenance; materialize it again")
            clips.append(mp4)
            inputs.append({"asset": f"clip/scene_{scene}", "sha256": record["sha256"]})
        mp4, info = assemble_ad(clips, crossfade_s=AD_CROSSFADE_S, title=brief.title or None)
        provenance = {
            "campaign": campaign, "asset": "ad", "clips": inputs, "sha256": sha256(mp4),
            "width": info.width, "height": info.height, "duration_s": round(info.duration_s, 3),
            "frame_count": info.frame_count, "fps": info.fps, "crossfade_s": info.crossfade_s,
            "title": brief.title, "title_s": info.title_s,
            "campaign_cost_usd": round(campaign_spend(context.instance, campaign, len(brief.scenes)), 6),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        path = _write_with_provenance(files, campaign, "ad", mp4, provenance)
        return MaterializeResult(
            metadata={
                "posters": MetadataValue.md(thumbnail_markdown(poster_strip(clips), f"ad of {campaign}", max_px=256)),
                "duration_s": MetadataValue.float(provenance["duration_s"]),
                "clips": MetadataValue.int(len(clips)),
                "campaign_cost_usd": MetadataValue.float(provenance["campaign_cost_usd"]),
                "path": MetadataValue.path(path),
            },
            data_version=DataVersion(provenance["sha256"]),
        )

    return ad


def build_clip_assets(max_scenes: int) -> list:
    return [clip_asset(k) for k in range(1, max_scenes + 1)] + [build_ad_asset(max_scenes)]
