"""``brief_sensor``: new briefs start themselves, an edit re-runs exactly the images it touches.

The cursor remembers, per brief file, its size and modification time (so a tick reads only files that
changed), its sha256 (so a version is never launched twice: it is the run key) and the fingerprint of every
image's request (so an edit is diffed image by image). A bad brief is reported with the same lines
``adchain validate`` prints and never holds the others up; a deleted brief deletes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from adchain_assets.brief import BriefError, load_brief
from adchain_assets.changes import affected_images, image_fingerprints
from adchain_assets.chains import campaigns, run_selection
from adchain_assets.references import Slot
from adchain_assets.resources import CampaignBriefs


@dataclass(frozen=True)
class CampaignRun:
    campaign: str
    brief_sha256: str
    images: list[Slot]


@dataclass
class TickPlan:
    runs: list[CampaignRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cursor: dict = field(default_factory=dict)


def brief_files(briefs_dir: Path) -> list[Path]:
    return sorted(p for p in briefs_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def plan_tick(briefs_dir: Path, cursor: dict, max_scenes: int) -> TickPlan:
    """What one tick should do, given the cursor of the previous one. Pure apart from reading briefs."""
    plan = TickPlan()
    seen = set()
    for path in brief_files(briefs_dir) if briefs_dir.is_dir() else []:
        campaign = path.stem
        seen.add(campaign)
        stat = path.stat()
        previous = cursor.get(campaign, {})
        state = {**previous, "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
        plan.cursor[campaign] = state
        if previous.get("mtime_ns") == stat.st_mtime_ns and previous.get("size") == stat.st_size:
            plan.problems += previous.get("problems", [])  # unchanged and still bad: keep saying so
            continue
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if sha == previous.get("sha256"):
            plan.problems += previous.get("problems", [])
            continue
        state["sha256"] = sha
        try:
            loaded = load_brief(path, max_scenes=max_scenes)
        except BriefError as error:
            state["problems"] = [str(problem) for problem in error.problems]
            plan.problems += state["problems"]
            continue
        state.pop("problems", None)
        fingerprints = image_fingerprints(loaded)
        before = previous.get("fingerprints")
        state["fingerprints"] = fingerprints
        images = affected_images(before or {}, fingerprints, max_scenes)
        if before is None:
            plan.notes.append(f"{path.name}: new campaign {campaign!r}, {len(images)} images requested")
        elif images:
            plan.notes.append(f"{path.name}: edited; {len(images)} images requested: {', '.join(map(str, images))}")
        else:
            plan.notes.append(f"{path.name}: edited, but no image's request changed; nothing to run")
        if images:
            plan.runs.append(CampaignRun(campaign, sha, images))
    for campaign in sorted(set(cursor) - seen):
        plan.notes.append(
            f"{campaign}.yaml was deleted; nothing was deleted: its images stay in campaigns/{campaign}/"
        )
    return plan


def build_brief_sensor(job):
    @sensor(
        name="brief_sensor",
        job=job,
        minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING,
        description="Watches <data>/briefs/: new briefs start, edits re-run only the images they touch.",
    )
    def brief_sensor(context: SensorEvaluationContext, briefs: CampaignBriefs):
        cursor = json.loads(context.cursor) if context.cursor else {}
        plan = plan_tick(briefs.briefs_dir, cursor, briefs.max_scenes)
        for line in plan.problems:
            context.log.error(line)
        for line in plan.notes:
            context.log.info(line)
        new_partitions = sorted(
            {run.campaign for run in plan.runs} - set(context.instance.get_dynamic_partitions(campaigns.name))
        )
        partition_requests = [campaigns.build_add_request(new_partitions)] if new_partitions else []
        next_cursor = json.dumps(plan.cursor, sort_keys=True)
        if not plan.runs:
            return SensorResult(
                skip_reason=SkipReason("\n".join(plan.problems + plan.notes) or "no brief changed"),
                cursor=next_cursor,
                dynamic_partitions_requests=partition_requests,
            )
        return SensorResult(
            run_requests=[
                RunRequest(
                    run_key=f"{run.campaign}@{run.brief_sha256[:16]}",
                    partition_key=run.campaign,
                    asset_selection=run_selection(run.images),
                    tags={"adchain/brief_sha256": run.brief_sha256},
                )
                for run in plan.runs
            ],
            cursor=next_cursor,
            dynamic_partitions_requests=partition_requests,
        )

    return brief_sensor
