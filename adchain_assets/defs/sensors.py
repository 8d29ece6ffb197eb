"""``brief_sensor``: the one owner of what runs next. Every tick brings each campaign in line with its brief
file, from what is stored.

For each brief in ``<data>/briefs/`` the tick computes the campaign's plan (:mod:`adchain_assets.plan.plan`):
what is missing or out of date, and why. A campaign with work and no run queued or in progress gets one run of
exactly that work, its brief pinned (:mod:`adchain_assets.store.snapshots`) and its sha256 in the run's tags.
That covers every way work appears: a new or edited brief, a failed or cancelled run, a new take launched from
the UI (what depends on it is out of date), a *Materialize all* whose review outputs Dagster skipped.

Nothing is remembered between ticks: the run key names the work (the outputs and their stored fingerprints), so
the same work is never requested twice, and any change (an edit, an undo, a failed or cancelled run) makes new
work. A bad brief is reported with the lines ``adchain validate`` prints and never holds the others up; a deleted
brief deletes nothing. Held requests (a final refusal) are reported, not re-asked.

Every request says what its run should cost (the plan's estimate: in the tick's log line and the run's tag
``adchain/estimate_usd``); a plan that would take its campaign over its budget is not requested, and the tick's
log says why in one line (:meth:`adchain_assets.plan.estimate.Estimate.refusal`).
"""

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from adchain_assets.brief.lint import lint_messages
from adchain_assets.brief.model import BriefError, campaign_id_problem
from adchain_assets.defs.costs import estimate_tags, run_key
from adchain_assets.defs.jobs import asset_keys, busy_campaigns
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.resources import (
    CampaignBriefs,
    ImageModel,
    Storage,
    VideoModel,
    current_plan,
    model_problems,
)
from adchain_assets.plan.requests import reference_warnings
from adchain_assets.store.snapshots import BRIEF_TAG
from adchain_assets.vision.photos import photo_problems

SENSOR_NAME = "brief_sensor"
TICK_S = 15


def brief_files(briefs: CampaignBriefs) -> list[Path]:
    folder = briefs.briefs_dir
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))


@dataclass
class Tick:
    runs: list[dg.RunRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the specificity lint, for campaigns requested
    refused: list[str] = field(default_factory=list)  # plans over their campaign's budget: why each is not launched
    campaigns: list[str] = field(default_factory=list)


def plan_tick(briefs: CampaignBriefs, storage: Storage, image_model: ImageModel, video_model: VideoModel,
              busy: dict[str, str]) -> Tick:
    """What one tick requests, given the campaigns busy with a run. Reads briefs and stored outputs only."""
    tick = Tick()
    for path in brief_files(briefs):
        campaign = path.stem
        problem = campaign_id_problem(campaign)
        if problem:
            tick.problems.append(f"{path}: {problem}")
            continue
        if path.suffix == ".yml" and path.with_suffix(".yaml").exists():
            tick.problems.append(f"{path}: {campaign}.yaml is there too; one brief per campaign (this one is ignored)")
            continue
        try:
            loaded = briefs.load(campaign)
            problems = model_problems(loaded, image_model, video_model) or photo_problems(loaded)
            if problems:  # what the configured models cannot make, a photo that cannot anchor: a bad brief
                raise BriefError(problems)
        except BriefError as error:
            tick.problems += [str(p) for p in error.problems]
            continue
        tick.campaigns.append(campaign)
        budget = briefs.budget_of(loaded)
        plan = current_plan(loaded, storage, image_model, video_model, budget_usd=budget)
        for name, reason in plan.held:
            tick.notes.append(f"{campaign}: {name} held ({reason})")
        if not plan.outdated:
            continue
        if campaign in busy:
            tick.notes.append(f"{campaign}: {len(plan.outdated)} outputs out of date; waiting for run {busy[campaign]}")
            continue
        refusal = plan.estimate.refusal(campaign)
        if refusal:  # over the campaign's budget: not launched, said every tick until the brief or budget changes
            tick.refused.append(refusal)
            continue
        # said when its work is requested, not every tick
        tick.warnings += lint_messages(loaded) + reference_warnings(loaded, image_model.maker())
        sha = briefs.pin(loaded)
        reasons = ", ".join(f"{name} ({reason})" for name, reason in plan.outdated[:6])
        more = f" and {len(plan.outdated) - 6} more" if len(plan.outdated) > 6 else ""
        tick.notes.append(f"{campaign}: requesting {len(plan.outdated)} outputs, estimate {plan.estimate.summary()}:"
                          f" {reasons}{more}")
        tick.runs.append(dg.RunRequest(
            run_key=run_key(plan, budget),
            partition_key=campaign,
            asset_selection=asset_keys(plan.outputs),
            tags={BRIEF_TAG: sha, **estimate_tags(storage, plan)},
        ))
    return tick


def build_brief_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=TICK_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs what is missing or out of date with each brief in <data>/briefs/, from what is stored.",
    )
    def brief_sensor(context: dg.SensorEvaluationContext, briefs: CampaignBriefs, storage: Storage,
                     image_model: ImageModel, video_model: VideoModel):
        tick = plan_tick(briefs, storage, image_model, video_model, busy_campaigns(context.instance))
        for line in tick.problems:
            context.log.error(line)
        for line in tick.warnings + tick.refused:
            context.log.warning(line)
        known = set(context.instance.get_dynamic_partitions(campaigns.name))
        for campaign in sorted(known - set(tick.campaigns) - {p.stem for p in brief_files(briefs)}):
            tick.notes.append(f"{campaign}: its brief was deleted; nothing was deleted: its outputs stay in storage")
        for line in tick.notes:
            context.log.info(line)
        new_partitions = sorted({run.partition_key for run in tick.runs} - known)
        partition_requests = [campaigns.build_add_request(new_partitions)] if new_partitions else []
        if not tick.runs:
            return dg.SensorResult(
                skip_reason=dg.SkipReason("\n".join(tick.problems + tick.refused + tick.notes)
                                          or "every campaign is up to date"),
                dynamic_partitions_requests=partition_requests,
            )
        return dg.SensorResult(run_requests=tick.runs, dynamic_partitions_requests=partition_requests)

    return brief_sensor
