"""Wires the project: three chains of image assets, the storyboard sheet, the clips and the ad, their
resources, job and sensor."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import AssetSelection, Definitions, EnvVar, define_asset_job, multiprocess_executor

from adchain_assets.cache import GenerationCache
from adchain_assets.chains import build_image_assets, step_retry
from adchain_assets.clips import build_clip_assets
from adchain_assets.resources import CampaignBriefs, ImageModel, VideoModel
from adchain_assets.sensors import build_brief_sensor
from adchain_assets.settings import Settings
from adchain_assets.storage import CampaignFiles, CampaignImageStorage
from adchain_assets.storyboard import build_report_asset, build_storyboard_asset

CAMPAIGN_JOB = "campaign"

# Steps run in their own processes; forkserver with the project and its heavy libraries preloaded makes each
# step start in a fraction of a second instead of re-importing them every time (benchmarks/throughput.py: a
# 4-scene campaign's span 48.7 s with only the project preloaded, 29.7 s with these; spawn is 44.5 s).
PRELOADED = [
    "adchain_assets.definitions",
    "adchain_assets.generators.gemini",
    "google.genai",
    "adchain_assets.consistency",
    "numpy",
    "cv2",
    "dlib",
]
executor = multiprocess_executor.configured(
    {"max_concurrent": 8, "start_method": {"forkserver": {"preload_modules": PRELOADED}}}
)


def _env(name: str, default=None):
    """``EnvVar(name)`` when set, so the UI shows the variable's name rather than its value."""
    return EnvVar(name) if os.environ.get(name) else default


# Every run of a campaign is this job on one partition, with the images it must make selected.
campaign_job = define_asset_job(CAMPAIGN_JOB, selection=AssetSelection.all())


def build_definitions(settings: Settings) -> Definitions:
    files = CampaignFiles(base_path=settings.storage_url)
    return Definitions(
        assets=[
            *build_image_assets(settings.max_scenes, step_retry(settings.step_retry_delay_s)),
            build_storyboard_asset(settings.max_scenes),
            build_report_asset(settings.max_scenes),
            *build_clip_assets(settings.max_scenes),
        ],
        jobs=[campaign_job],
        sensors=[build_brief_sensor(campaign_job)],
        resources={
            "briefs": CampaignBriefs(data_dir=settings.data_dir, max_scenes=settings.max_scenes, storage_url=settings.storage_url),
            "files": files,
            "cache": GenerationCache(root=str(Path(settings.storage_url) / "cache")),
            "image_storage": CampaignImageStorage(files=files),
            "image_model": ImageModel(
                backend=settings.image_backend,
                model=settings.image_model,
                api_key=_env("GEMINI_API_KEY"),
                base_url=_env("GEMINI_BASE_URL"),
            ),
            "video_model": VideoModel(
                backend=settings.video_backend,
                model=settings.video_model,
                api_key=_env("GEMINI_API_KEY"),
                base_url=_env("GEMINI_BASE_URL") if settings.video_route == "gemini" else (settings.vertex_base_url or None),
                route=settings.video_route,
                project=settings.cloud_project or None,
                location=settings.cloud_location,
            ),
        },
        executor=executor,
    )


defs = build_definitions(Settings.from_env())
