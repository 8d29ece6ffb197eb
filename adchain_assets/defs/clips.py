"""From frames to the ad: a clip per scene from its start and end frames, and the clips joined into the ad.

``clip/scene_k`` depends on ``start/scene_k`` and ``end/scene_k``; ``ad`` on every clip. A clip is made by
the video backend (the offline dissolve, or Veo with the start frame as first frame and the end frame as
last frame), answered from the generation cache when its frames, prompt and settings are unchanged. The ad is the
rough cut, finished when the brief asks for it (:mod:`adchain_assets.media.finish`: supers, end card, sound), with
its captions as ``ad.srt`` beside it; the finish reads the brand's files from the run's pinned snapshot and the
faces of each captioned scene's start and end frames from the feature store. An approved clip or ad is kept as
stored by every run.
"""

import io
import json
import warnings
from dataclasses import asdict
from typing import Optional

import dagster as dg
import numpy as np
from PIL import Image

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.defs.direction import approved_result
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.resources import CampaignBriefs, Storage, VideoModel
from adchain_assets.defs.steps import as_parents, held_call, load_parents, now, pinned, step_retry, thumbnail_markdown
from adchain_assets.media.ad import AdInfo, assemble_ad
from adchain_assets.media.endcard import EndCard
from adchain_assets.media.finish import Finish, finish_ad
from adchain_assets.media.mp4 import first_frame, probe
from adchain_assets.media.supers import FaceBox
from adchain_assets.plan.calls import BUDGET
from adchain_assets.plan.finish import finish_material
from adchain_assets.plan.requests import AD, AD_CROSSFADE_S, Request, build_request, clip_output, fingerprint
from adchain_assets.providers.images.preview import PreviewGenerator
from adchain_assets.providers.video.base import VideoGenerationError, VideoRequest
from adchain_assets.store.budget import budgeted
from adchain_assets.store.files import SUBTITLES, CampaignFiles, StoredOutput, sha256, write_atomically
from adchain_assets.store.ledger import CallMeter

CLIP_CODE_VERSION = "1"
VIDEO_POOL = "video_model"
AD_KEY = dg.AssetKey("ad")


def clip_key(scene: int) -> dg.AssetKey:
    return dg.AssetKey(["clip", f"scene_{scene}"])


def poster(mp4: bytes) -> Image.Image:
    """The clip's first frame."""
    with Image.open(io.BytesIO(first_frame(mp4))) as image:
        return image.convert("RGB")


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
        kept = approved_result(context, storage, campaign, output)
        if kept is not None:
            yield kept
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
                    "poster": dg.MetadataValue.md(thumbnail_markdown(first_frame(video.mp4), output)),
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


def scene_faces(storage: Storage, campaign: str, clip: StoredOutput) -> tuple[FaceBox, ...]:
    """The faces in the clip's start and end frames (none in preview frames, which draw no faces)."""
    boxes = []
    for item in clip.provenance.get("inputs", []):
        frame = storage.files.read_output(campaign, item["asset"])
        if frame is None or frame.provenance.get("backend") == PreviewGenerator.backend:
            continue
        width, height = int(frame.provenance["width"]), int(frame.provenance["height"])
        for face in storage.features.faces(frame.data, frame.sha256):
            boxes.append(FaceBox(face.box.left, face.box.top, face.box.right, face.box.bottom, width, height))
    return tuple(boxes)


def finish_of(loaded: LoadedBrief, storage: Storage, campaign: str, clips: list[StoredOutput],
              aspect_ratio: Optional[str] = None) -> Optional[Finish]:
    """What the brief asks of the ad beyond the cut, with the brand's files read from the pinned snapshot, in the
    safe area of ``aspect_ratio`` (the brief's by default; a placement's ad gives its own)."""
    if finish_material(loaded) is None:
        return None
    brief = loaded.brief
    brand = brief.brand

    def read(relative: Optional[str]) -> Optional[bytes]:
        return loaded.resolve(relative).read_bytes() if relative else None

    logo = read(brand.logo) if brand is not None else None
    captions = [scene.caption for scene in brief.scenes]
    return Finish(
        aspect_ratio=aspect_ratio or brief.aspect_ratio,
        captions=captions,
        faces=[scene_faces(storage, campaign, clip) if caption.strip() else ()
               for clip, caption in zip(clips, captions)],
        font=read(brand.font) if brand is not None else None,
        end_card=EndCard(brand.cta, brand.url, brand.legal, tuple(brand.colors), logo)
        if brand is not None and brand.has_end_card() else None,
        end_card_s=brand.end_card_s if brand is not None else 0.0,
        logo_bug=logo if brand is not None and brand.logo_bug else None,
        music=read(brief.music),
        clip_audio=brief.video.audio,
    )


def cut_ad(storage: Storage, request: Request, clips: list[bytes], finish: Optional[Finish],
           title: Optional[str]) -> tuple[bytes, bool, AdInfo, dict]:
    """The ad of ``clips`` (the master's or a placement's), finished when ``finish`` is given, through the cache:
    (mp4, cache hit, its timeline, details). The details (SRT, measured loudness, where each caption went) are
    cached beside the ad under the request's fingerprint; {} without a finish."""
    made = {}

    def assemble() -> bytes:
        if "mp4" in made:  # made once per step, whichever cache entry asked first
            return made["mp4"]
        if finish is None:
            made["mp4"], made["info"] = assemble_ad(clips, crossfade_s=AD_CROSSFADE_S, title=title)
            return made["mp4"]
        finished = finish_ad(clips, finish, crossfade_s=AD_CROSSFADE_S, title=title)
        made["mp4"], made["info"] = finished.mp4, finished.info
        made["details"] = json.dumps({"srt": finished.srt, "loudness": finished.loudness,
                                      "captions": finished.captions, "info": asdict(finished.info)}).encode()
        return finished.mp4

    details = {}
    if finish is not None:  # the SRT and the measured loudness, kept in the cache beside the ad they belong to
        details_key = fingerprint({"details_of": request.fingerprint})
        raw, _ = storage.cache.remember(details_key, "ad.details.json", lambda: (assemble(), made["details"])[1])
        details = json.loads(raw)
    mp4, reused = storage.cache.remember(request.fingerprint, "ad.mp4", assemble)
    return mp4, reused, made.get("info") or probe(mp4), details


def ad_provenance(campaign: str, name: str, loaded: LoadedBrief, request: Request, stored: dict[str, StoredOutput],
                  info: AdInfo, reused: bool) -> dict:
    """What an ad's provenance says of its cut (the master's or a placement's)."""
    return {
        "campaign": campaign, "asset": name,
        "clips": [{"asset": clip_name, "sha256": clip.sha256} for clip_name, clip in stored.items()],
        "width": info.width, "height": info.height, "duration_s": round(info.duration_s, 3),
        "frame_count": info.frame_count, "fps": info.fps, "crossfade_s": AD_CROSSFADE_S,
        "title": loaded.brief.title, "cache_hit": reused,
        "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
    }


def write_ad(files: CampaignFiles, campaign: str, name: str, mp4: bytes, provenance: dict, finish: Optional[Finish],
             details: dict):
    """Store an ad made by :func:`cut_ad` with its finish in its provenance, and its captions as ``ad.srt`` in its
    folder (written before the ad, whose provenance names it; an earlier cut's file is removed when this one has
    no captions). Returns the ad's path."""
    srt_path = files.output_path(campaign, name).parent / SUBTITLES
    if finish is not None:
        timeline = details["info"]
        provenance["finish"] = {
            "end_card_s": round(timeline["end_card_s"], 3), "title_s": round(timeline["title_s"], 3),
            "clip_starts_s": [round(t, 3) for t in timeline["clip_starts_s"]],
            "captions": details["captions"], "logo_bug": finish.logo_bug is not None,
            "music": finish.music is not None, "clip_audio": finish.clip_audio,
        }
        provenance["loudness"] = details["loudness"]
        provenance["audio"] = details["loudness"] is not None and not details["loudness"].get("silent", False)
    if details.get("srt"):
        srt = details["srt"].encode()
        write_atomically(srt_path, srt)
        provenance["srt"] = {"path": SUBTITLES, "sha256": sha256(srt), "cues": details["srt"].count(" --> ")}
    path = files.write_output(campaign, name, mp4, provenance)
    if "srt" not in provenance:
        srt_path.unlink(missing_ok=True)
    return path


def build_ad_asset(max_scenes: int) -> dg.AssetsDefinition:
    @dg.asset(
        key=AD_KEY,
        deps=[clip_key(k) for k in range(1, max_scenes + 1)],
        partitions_def=campaigns,
        group_name="clips",
        kinds={"video"},
        description=("The campaign's ad: every scene's clip in order, with a short cross-fade between scenes; with"
                     " the brief's captions, end card, logo and sound when it asks for them (and ad.srt beside it)."),
    )
    def ad(context: dg.AssetExecutionContext, briefs: CampaignBriefs, storage: Storage) -> dg.MaterializeResult:
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, AD)
        brief = loaded.brief
        kept = approved_result(context, storage, campaign, AD)
        if kept is not None:
            return kept
        stored = load_parents(files, campaign, AD, loaded)
        request = build_request(AD, loaded, as_parents(stored))
        clips = [clip.data for clip in stored.values()]
        finish = finish_of(loaded, storage, campaign, list(stored.values()))
        mp4, reused, info, details = cut_ad(storage, request, clips, finish, brief.title or None)
        spend = storage.ledger.spend(campaign)
        provenance = {**ad_provenance(campaign, AD, loaded, request, stored, info, reused),
                      "campaign_cost_usd": spend.spend_usd}
        path = write_ad(files, campaign, AD, mp4, provenance, finish, details)
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
