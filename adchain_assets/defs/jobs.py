"""The campaign job (every run of a campaign is this job on its partition, with the outputs it must make
selected), the executor its steps run on, and what a run is asked to make."""

from __future__ import annotations

from typing import Iterable

import dagster as dg

from adchain_assets.plan.placements import PLACEMENTS, is_placement, split_placement
from adchain_assets.plan.references import SHEETS
from adchain_assets.plan.requests import kind_of
from adchain_assets.settings import CELERY_SETTINGS, Settings

CAMPAIGN_JOB = "campaign"
# Steps run in their own processes, forked from a forkserver that has loaded adchain_assets.preload (the
# project, google-genai, OpenCV and dlib with the face models, the instance's storage classes) once, so a step
# starts in a fraction of a second instead of re-importing and re-loading them (benchmarks/throughput.py).
PRELOADED = ["adchain_assets.preload"]
MAX_CONCURRENT_STEPS = 8
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

campaign_job = dg.define_asset_job(CAMPAIGN_JOB, selection=dg.AssetSelection.all())
PLACEMENTS_JOB = "placements"
# Every placement asset: how the UI launches the placements of one campaign (Jobs -> placements -> Launchpad, the
# campaign as its partition; which placements: the placement_choice resource's config).
placements_job = dg.define_asset_job(
    PLACEMENTS_JOB, selection=dg.AssetSelection.groups(PLACEMENTS),
    description="Every placement of a campaign (its frames, clips, ad and storyboard), or those the run's"
                " placement_choice names; each made again only where its request changed.",
)


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """The campaign job's executor, chosen by ``ADCHAIN_EXECUTOR``.

    ``multiprocess`` (the default): steps in forkserver processes on the machine that runs the run.
    ``celery``: steps go to ``dagster-celery`` workers, on any machine, through the broker in
    ``ADCHAIN_CELERY_BROKER`` (results back through ``ADCHAIN_CELERY_BACKEND``, default: the broker); the workers
    must listen on the same broker and share the instance (Postgres) and the storage URL (deploy/README.md).
    """
    if settings.executor == "celery":
        broker, backend = settings.celery_broker_and_backend()
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {"broker": broker, "backend": backend, "config_source": dict(CELERY_SETTINGS)}
        )
    return dg.multiprocess_executor.configured(
        {"max_concurrent": MAX_CONCURRENT_STEPS, "start_method": {"forkserver": {"preload_modules": PRELOADED}}}
    )


def asset_keys(outputs: Iterable[str]) -> list[dg.AssetKey]:
    """The assets that make ``outputs``: ``reference/scene_2`` -> ``AssetKey(["reference", "scene_2"])``; every
    ``subjects/<id>`` -> the one ``subjects`` asset (once); ``placements/<W>x<H>/start/scene_2`` -> the asset of that
    slot in every placement, ``placements/start/scene_2`` (once)."""
    keys: list[dg.AssetKey] = []
    for name in outputs:
        if kind_of(name) == "sheet":
            key = dg.AssetKey(SHEETS)
        elif is_placement(name):
            key = dg.AssetKey([PLACEMENTS, *split_placement(name)[1].split("/")])
        else:
            key = dg.AssetKey(name.split("/"))
        if key not in keys:
            keys.append(key)
    return keys


def run_assets(instance: dg.DagsterInstance, campaign: str, keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """The assets a run of ``campaign`` selects (``keys``, from ``asset_keys``), with the ``subjects`` step as well
    when it has never run for the campaign: every image lists it upstream, so until it has a materialization (in
    ``chain`` mode one that says there are no sheets) the UI warns on each image's launch that an upstream is
    missing."""
    keys = list(keys)
    sheets_key = dg.AssetKey(SHEETS)
    if keys and sheets_key not in keys:
        made = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=sheets_key, asset_partitions=[campaign]), limit=1).records
        if not made:
            keys.insert(0, sheets_key)
    return keys


def busy_campaigns(instance: dg.DagsterInstance) -> dict[str, str]:
    """``{campaign: run id}`` of every campaign with a run queued or in progress."""
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))
    return {run.tags["dagster/partition"]: run.run_id for run in runs if "dagster/partition" in run.tags}
