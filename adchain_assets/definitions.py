"""Wires the project: three chains of image assets, the storyboard sheet, the clips and the ad, their
resources, job and sensor."""

from __future__ import annotations

import os
from upath import UPath

from dagster import AssetSelection, Definitions, EnvVar, define_asset_job, multiprocess_executor

from adchain_assets.automation import Planner, build_follow_sensor, with_follow_condition
from adchain_assets.cache import GenerationCache
from adchain_assets.chains import build_image_assets, step_retry
from adchain_assets.clips import build_clip_assets
from adchain_assets.resources import CampaignBriefs, ImageModel, VideoModel
from adchain_assets.sensors import build_brief_sensor
from adchain_assets.settings import CELERY_SETTINGS, Settings, SettingsError, celery_broker_and_backend
from adchain_assets.storage import CampaignFiles, CampaignImageStorage
from adchain_assets.storyboard import build_report_asset, build_storyboard_asset

CAMPAIGN_JOB = "campaign"

# Steps run in their own processes, forked from a forkserver that has loaded adchain_assets.preload (the project,
# google-genai, OpenCV and dlib with the face models, the instance's storage classes) once, so a step starts in a
# fraction of a second instead of re-importing and re-loading them (benchmarks/throughput.py measures the set-ups).
PRELOADED = ["adchain_assets.preload"]
EXECUTORS = ("multiprocess", "celery")


def build_executor():
    """The campaign job's executor, chosen by ``ADCHAIN_EXECUTOR``.

    ``multiprocess`` (the default): steps in forkserver processes on the machine that runs the run.
    ``celery``: steps go to ``dagster-celery`` workers, on any machine, through the broker in
    ``ADCHAIN_CELERY_BROKER`` (results back through ``ADCHAIN_CELERY_BACKEND``, default: the broker); the workers
    must listen on the same broker and share the instance (Postgres) and the storage URL (deploy/README.md).
    """
    choice = os.environ.get("ADCHAIN_EXECUTOR", "multiprocess").strip() or "multiprocess"
    if choice == "multiprocess":
        return multiprocess_executor.configured(
            {"max_concurrent": 8, "start_method": {"forkserver": {"preload_modules": PRELOADED}}}
        )
    if choice == "celery":
        broker, backend = celery_broker_and_backend()
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {
                "broker": broker,
                "backend": backend,
                "config_source": dict(CELERY_SETTINGS),  # the workers' own settings (deploy/README.md)
            }
        )
    raise SettingsError(f"ADCHAIN_EXECUTOR={choice!r}: use one of {', '.join(EXECUTORS)}")


executor = build_executor()


def _env(name: str, default=None):
    """``EnvVar(name)`` when set, so the UI shows the variable's name rather than its value."""
    return EnvVar(name) if os.environ.get(name) else default


# Every run of a campaign is this job on one partition, with the images it must make selected.
campaign_job = define_asset_job(CAMPAIGN_JOB, selection=AssetSelection.all())


def build_definitions(settings: Settings) -> Definitions:
    files = CampaignFiles(base_path=settings.storage_url)
    briefs = CampaignBriefs(data_dir=settings.data_dir, max_scenes=settings.max_scenes, storage_url=settings.storage_url)
    image_model = ImageModel(
        backend=settings.image_backend,
        model=settings.image_model,
        api_key=_env("GEMINI_API_KEY"),
        base_url=_env("GEMINI_BASE_URL"),
    )
    video_model = VideoModel(
        backend=settings.video_backend,
        model=settings.video_model,
        api_key=_env("GEMINI_API_KEY"),
        base_url=_env("GEMINI_BASE_URL") if settings.video_route == "gemini" else (settings.vertex_base_url or None),
        route=settings.video_route,
        project=settings.cloud_project or None,
        location=settings.cloud_location,
    )
    assets = [
        *build_image_assets(settings.max_scenes, step_retry(settings.step_retry_delay_s)),
        build_storyboard_asset(settings.max_scenes),
        build_report_asset(settings.max_scenes),
        *build_clip_assets(settings.max_scenes),
    ]
    return Definitions(
        # What depends on a newly made output follows it, as the plan says (adchain_assets/automation.py).
        assets=with_follow_condition(assets, Planner(briefs, files, image_model, video_model)),
        jobs=[campaign_job],
        sensors=[build_brief_sensor(campaign_job), build_follow_sensor()],
        resources={
            "briefs": briefs,
            "files": files,
            "cache": GenerationCache(root=str(UPath(settings.storage_url) / "cache")),
            "image_storage": CampaignImageStorage(files=files),
            "image_model": image_model,
            "video_model": video_model,
        },
        executor=executor,
    )


defs = build_definitions(Settings.from_env())
