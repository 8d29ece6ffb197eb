"""brief_sensor is the one owner of what runs next: after a run that made some outputs and not what depends on
them, its next tick requests exactly what the plan calls out of date, once, in one run per campaign.

- *Materialize all* (the campaign job, every slot) on a 3-scene brief with 8 slots makes every image and clip of
  the brief; the review outputs, skipped because slots beyond the brief yield nothing, are requested by the very
  next tick, and nothing else is.
- A new take of ``reference/scene_2`` alone (the UI's launchpad): the next tick requests exactly the plan's
  out-of-date outputs, in one run; after that run, nothing is out of date and nothing is requested; the model
  calls are the changed requests. While a run of the campaign is queued or in progress, nothing is requested.
"""

import dagster as dg
import pytest

from adchain_assets.defs.images import new_take_config
from adchain_assets.defs.resources import current_plan
from adchain_assets.plan.references import Slot
from adchain_assets.plan.requests import output_names
from adchain_assets.store.ledger import Ledger

from .helpers import definitions_for, sampling_like_a_real_model, selected, short_clips, tick

CAMPAIGN = "muse-portrait"  # 3 scenes, anchored: a new take of reference/scene_2 changes most of scenes 2 and 3
MAX_SCENES = 8
REVIEW = {"storyboard", "ad", "report", "storyboard_pdf", "deliverables"}


@pytest.fixture
def world(tmp_path, data_dir, instance, fake_gemini):
    sampling_like_a_real_model(fake_gemini)  # a new take is a new picture, as with the real model
    for other in data_dir.joinpath("briefs").glob("*.yaml"):  # one campaign: the tick is about it alone
        if other.stem != CAMPAIGN:
            other.unlink()
    short_clips(data_dir / "briefs" / f"{CAMPAIGN}.yaml")
    defs = definitions_for(data_dir, max_scenes=MAX_SCENES, image_backend="gemini")
    instance.add_dynamic_partitions("campaigns", [CAMPAIGN])

    class World:
        pass

    w = World()
    w.defs, w.instance, w.data_dir = defs, instance, data_dir
    w.files = defs.resources["storage"].files
    w.job = defs.resolve_job_def("campaign")

    def requested():
        return selected(tick(defs, instance))

    def run(selection=None, run_config=None):
        result = w.job.execute_in_process(
            instance=instance, partition_key=CAMPAIGN, run_config=run_config or {}, raise_on_error=False,
            asset_selection=None if selection is None else [dg.AssetKey.from_user_string(s) for s in selection],
        )
        assert result.success, [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
        return result

    def plan():
        resources = defs.resources
        return current_plan(resources["briefs"].load(CAMPAIGN), resources["storage"], resources["image_model"],
                            resources["video_model"])

    w.requested, w.run, w.plan = requested, run, plan
    return w


def made(result) -> list[str]:
    return sorted(e.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION")


def test_materialize_all_makes_the_brief_and_the_next_tick_makes_the_review_outputs(world):
    result = world.run()  # every asset of the job: the sheets, 24 image slots, 8 clips, storyboard, report, ad
    images = [Slot(chain, k).key for k in range(1, 4) for chain in ("reference", "start", "end")]
    clips = [f"clip/scene_{k}" for k in range(1, 4)]
    # the sheets' asset materializes with a note in a chain-mode campaign (so nothing after it is skipped)
    assert made(result) == sorted(["subjects"] + images + clips)
    assert not any((world.data_dir / "campaigns" / CAMPAIGN / chain / "scene_4.png").exists()
                   for chain in ("reference", "start", "end"))
    assert set(world.plan().outputs) == REVIEW

    assert world.requested() == {CAMPAIGN: REVIEW}  # and nothing for the slots beyond the brief
    world.run(selection=sorted(REVIEW))
    assert world.plan().outputs == [] and world.plan().held == []
    assert world.requested() == {}


def test_a_new_take_is_followed_by_exactly_the_plan_once(world):
    # the whole brief, as brief_sensor or `adchain materialize` runs it the first time (with the subjects step)
    world.run(selection=["subjects"] + output_names(3))
    assert world.plan().outputs == []
    assert world.requested() == {}
    before = world.files.read_provenances(CAMPAIGN, output_names(3))
    calls_before = len(Ledger(str(world.data_dir)).calls(CAMPAIGN))

    world.run(selection=["reference/scene_2"], run_config=new_take_config(Slot("reference", 2)))
    plan = world.plan()
    # while any run of the campaign is queued, starting or in progress, nothing
    queued = world.instance.create_run_for_job(
        job_def=world.job, run_config={}, tags={"dagster/partition": CAMPAIGN})  # NOT_STARTED
    assert world.requested() == {}
    world.instance.delete_run(queued.run_id)

    requested = world.requested()
    assert requested == {CAMPAIGN: set(plan.outputs)}
    # anchored mode: every image shown reference/scene_2 or what was made from it, their clips, the review
    assert set(plan.outputs) == {
        "reference/scene_3", "start/scene_2", "start/scene_3", "end/scene_2", "end/scene_3",
        "clip/scene_2", "clip/scene_3", "storyboard", "ad", "report", "storyboard_pdf", "deliverables",
    }
    followed = world.run(selection=sorted(requested[CAMPAIGN]))
    assert sorted(made(followed)) == sorted(plan.outputs)
    assert world.plan().outputs == []
    assert world.requested() == {}, "asked twice for the same change"

    after = world.files.read_provenances(CAMPAIGN, output_names(3))
    changed = {n for n in after if after[n]["request_sha256"] != before[n]["request_sha256"]}
    assert after["reference/scene_2"]["take"] == before["reference/scene_2"]["take"] + 1
    assert after["reference/scene_1"] == before["reference/scene_1"]
    calls = Ledger(str(world.data_dir)).calls(CAMPAIGN)[calls_before:]
    called = sorted(call.output for call in calls)
    # one model call per changed image request (the new take and what it changed), none for the others
    assert called == sorted(n for n in changed if n.split("/")[0] in ("reference", "start", "end")), (called, changed)
    # the clips' backend (preview) was asked exactly for the changed clips; the sheet, report and ad are assembled
    clips = {n for n in output_names(3) if n.startswith("clip/")}
    assert {n for n in clips if not after[n]["cache_hit"] and after[n]["created_at"] != before[n]["created_at"]} == changed & clips
    for name in ("reference/scene_3", "storyboard"):
        assert after[name]["sha256"] != before[name]["sha256"]


def test_an_edit_right_after_a_new_take_is_run_by_the_next_tick_with_the_follow_up(world):
    world.run(selection=["subjects"] + output_names(3))
    world.run(selection=["reference/scene_2"], run_config=new_take_config(Slot("reference", 2)))
    path = world.data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    path.write_text(path.read_text().replace("sage-green shelf", "white marble shelf"))
    plan = world.plan()
    assert "reference/scene_3" in plan.outputs
    assert world.requested() == {CAMPAIGN: set(plan.outputs)}  # no waiting: one owner, no time windows
