"""Downstream follows by itself: Dagster's declarative automation, decided by the plan.

Every asset carries :func:`follows_condition`. After a run that made some outputs and not what depends on them
(a new take of one image launched from its asset page in the UI, one asset materialized by hand, a *Materialize
all* whose review outputs were skipped), the ``follow_sensor`` (an ``AutomationConditionSensorDefinition``, on
by default, evaluated in the code server by the daemon that ``dagster dev`` runs) requests, in one run per
campaign, exactly the outputs the plan (:mod:`adchain_assets.plan`, what ``adchain plan`` prints) calls out of
date below them. The condition is Dagster's ``eager`` shape with the plan as its gate:

- *a parent was made, or will be requested this tick, since this output was last requested or made*
  (``any_deps_match(newly_updated | will_be_requested).since_last_handled()``): the trigger, and what keeps
  the sensor from asking twice for the same change (a failed or cancelled follow-up is not re-asked by it);
  unlike ``eager`` it also counts parents made by a run that selected this output but skipped it;
- not in progress, no parent in progress, and no run of the campaign queued or in progress (the rule
  ``brief_sensor`` follows too: Dagster's own ``in_progress`` was seen false for outputs a running run had
  not made yet, so the campaign-wide check is what keeps the two from overlapping);
- :class:`PlanSaysOutOfDate`: the campaign's plan lists this output as out of date **and** the campaign's work
  is the automation's (:func:`owner_of`). Outputs the plan calls up to date are never requested, whatever
  Dagster's lineage says: in ``chain`` mode a new take of ``reference/scene_2`` does not touch ``start/scene_2``
  (its request does not show that image), so it is not run, and slots beyond the brief never are.

Who owns which work (:func:`owner_of`), so that ``brief_sensor`` and this sensor never launch the same work:
both compute the same plan from the same stored state and call the same function, so they agree without
talking to each other. The automation owns a campaign whose out-of-date work all *follows a newer parent*:
every root of it (an out-of-date output whose parents are all up to date) is missing or has a changed request,
was made from the current brief (or not at all), and has a parent made from the current brief after it and less
than ``FOLLOW_WINDOW_S`` ago. Everything else (a new or edited brief, a failed or held request, a changed model,
work the automation left undone) is ``brief_sensor``'s; it takes over follow-up work ``HANDOVER_S`` after the
parent was made, and in between nobody starts it (so a request the automation made just before the window
closed is a queued run that ``brief_sensor`` sees, not a second launch).

Cannot: custom conditions are not serialisable, so the default automation condition sensor (which runs in the
daemon, without user code) cannot evaluate them; this module's ``follow_sensor`` (``use_user_code_server``)
does. It plans from the brief *file* as it is at the tick; the run then pins the brief its first step sees.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import dagster as dg

from adchain_assets.brief import BriefError
from adchain_assets.outputs import output_names, parents_of
from adchain_assets.plan import CHANGED, MISSING, PARENT_CHANGED, Plan, busy_campaigns, plan_with
from adchain_assets.resources import CampaignBriefs, ImageModel, VideoModel
from adchain_assets.storage import CampaignFiles

AUTOMATION, BRIEF_SENSOR, HANDING_OVER, NOBODY = "automation", "brief_sensor", "handing over", "nobody"
FOLLOW_WINDOW_S = 300  # the automation's claim on follow-up work, from the newest parent's creation
HANDOVER_S = 360  # brief_sensor takes unfinished follow-up work from here; in between nobody starts it
SENSOR_NAME = "follow_sensor"
SENSOR_INTERVAL_S = 15
LAUNCHED_BY_TAG = "adchain/launched_by"


def _time(record: Optional[dict]) -> Optional[float]:
    try:
        stamp = datetime.fromisoformat(str(record["created_at"]))  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


@dataclass
class Work:
    """A campaign's plan and who owns its out-of-date work now."""

    plan: Optional[Plan]
    owner: str
    why: str
    outdated: set[str] = field(default_factory=set)


def owner_of(plan: Plan, loaded, files: CampaignFiles, now: float) -> tuple[str, str]:
    """``(owner, why)``: :data:`AUTOMATION` when every root of the plan's work follows a parent made from the
    current brief less than ``FOLLOW_WINDOW_S`` ago, :data:`HANDING_OVER` until ``HANDOVER_S``, else
    :data:`BRIEF_SENSOR` (:data:`NOBODY` when nothing is out of date)."""
    if not plan.outdated:
        return NOBODY, "up to date"
    records = files.read_provenances(loaded.campaign, output_names(len(loaded.brief.scenes)))
    newest = None
    for name, reason in plan.outdated:
        if reason.startswith(PARENT_CHANGED):
            continue
        if reason not in (MISSING, CHANGED):
            return BRIEF_SENSOR, f"{name}: {reason}"
        record = records.get(name)
        if record is not None and record.get("brief_sha256") != plan.brief_sha256:
            return BRIEF_SENSOR, f"{name}: made from another brief"
        made = _time(record) if record is not None else None
        parents = [(p, records.get(p)) for p in parents_of(name, loaded)]
        newer = [
            (_time(r), p) for p, r in parents
            if r is not None and r.get("brief_sha256") == plan.brief_sha256 and _time(r) is not None
            and (made is None or _time(r) >= made)
        ]
        if not newer:
            return BRIEF_SENSOR, f"{name}: {reason}, no parent made after it from this brief"
        stamp, parent = max(newer)
        if newest is None or stamp > newest[0]:
            newest = (stamp, parent)
    if newest is None:  # only "parent changed" entries: cannot happen for a plan, whose roots come first
        return BRIEF_SENSOR, "no root"
    age = now - newest[0]
    if age < FOLLOW_WINDOW_S:
        return AUTOMATION, f"follows {newest[1]} (made {age:.0f} s ago)"
    if age < HANDOVER_S:
        return HANDING_OVER, f"follows {newest[1]}, made {age:.0f} s ago: handing over to brief_sensor"
    return BRIEF_SENSOR, f"follows {newest[1]}, made {age:.0f} s ago: the automation did not finish it"


def campaign_work(briefs: CampaignBriefs, files: CampaignFiles, image_model: ImageModel, video_model: VideoModel,
                  campaign: str, now: Optional[float] = None) -> Work:
    """The plan of ``campaign`` from its brief file and what is stored, and who owns its work."""
    try:
        loaded = briefs.load(campaign)
    except BriefError as error:
        return Work(None, BRIEF_SENSOR, str(error))
    plan = plan_with(loaded, files, image_model, video_model)
    owner, why = owner_of(plan, loaded, files, time.time() if now is None else now)
    return Work(plan, owner, why, set(plan.outputs))


class Planner:
    """The plan per campaign for one automation tick (every asset's condition asks; the plan is made once)."""

    def __init__(self, briefs: CampaignBriefs, files: CampaignFiles, image_model: ImageModel, video_model: VideoModel):
        self.briefs, self.files, self.image_model, self.video_model = briefs, files, image_model, video_model
        self._tick: object = None
        self._works: dict[str, Work] = {}
        self._busy: dict[str, str] = {}
        self._lock = threading.Lock()

    def work(self, campaign: str, tick: object, instance: dg.DagsterInstance) -> Work:
        with self._lock:
            if tick != self._tick:
                self._tick, self._works, self._busy = tick, {}, busy_campaigns(instance)
            if campaign in self._busy:  # as for brief_sensor: nothing new while a run of the campaign is queued or on
                return Work(None, NOBODY, f"run {self._busy[campaign]} in progress")
            if campaign not in self._works:
                self._works[campaign] = campaign_work(
                    self.briefs, self.files, self.image_model, self.video_model, campaign
                )
            return self._works[campaign]


class PlanSaysOutOfDate(dg.AutomationCondition):
    """True for the campaigns whose plan calls this output out of date while their work is the automation's."""

    def __init__(self, planner: Planner):
        self.planner = planner

    @property
    def name(self) -> str:
        return "plan_says_out_of_date"

    @property
    def description(self) -> str:
        return "the campaign's plan (adchain plan) calls this output out of date, following a newer parent"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        output = context.key.to_user_string()
        chosen = set()
        for campaign in context.candidate_subset.expensively_compute_partition_keys():
            tick = (context.evaluation_id, context.evaluation_time)  # the same for every asset of one tick
            work = self.planner.work(campaign, tick, context.asset_graph_view.instance)
            if work.owner == AUTOMATION and output in work.outdated:
                chosen.add(campaign)
        true_subset = (
            context.candidate_subset.compute_intersection_with_partition_keys(chosen)
            if chosen else context.get_empty_subset()
        )
        return dg.AutomationResult(context=context, true_subset=true_subset)


def follows_condition(planner: Planner) -> dg.AutomationCondition:
    parent_made = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.newly_updated() | dg.AutomationCondition.will_be_requested()
    ).with_label("a parent made or requested")
    return (
        parent_made.since_last_handled()
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & PlanSaysOutOfDate(planner)
    ).with_label("follows its parents when the plan says so")


def with_follow_condition(assets: list, planner: Planner) -> list:
    """``assets`` with :func:`follows_condition` on every asset."""
    condition = follows_condition(planner)
    return list(dg.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=condition), assets))


def build_follow_sensor() -> dg.AutomationConditionSensorDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # use_user_code_server: beta, and what a custom condition needs
        return _follow_sensor()


def _follow_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        SENSOR_NAME,
        target=dg.AssetSelection.all(),
        use_user_code_server=True,  # PlanSaysOutOfDate is Python: the daemon alone cannot evaluate it
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        emit_backfills=False,  # one run per campaign, under the run queue's one-run-per-campaign limit
        run_tags={LAUNCHED_BY_TAG: "automation"},
        description="Brings what depends on a newly made output up to date: exactly what the campaign's plan "
        "calls out of date below it (a new take launched from an asset page, a skipped review output).",
    )
