"""follow_sensor's automation condition, evaluated as the daemon evaluates it (``dg.evaluate_automation_conditions``)
against runs executed in process: what it requests is exactly what the plan calls out of date, once, and
brief_sensor leaves that work to it.

- *Materialize all* (the campaign job, every slot) on a 3-scene brief with 8 slots makes every image and clip of
  the brief; the review outputs, skipped because slots beyond the brief yield nothing, are requested by the very
  next tick, and nothing else is.
- A new take of ``reference/scene_2`` alone: the next tick requests exactly the plan's out-of-date outputs, in one
  run; after that run, nothing is out of date and nothing is requested; the model calls are the changed requests.
"""

import json
import shutil

import dagster as dg
import pytest

from adchain_assets.automation import AUTOMATION, BRIEF_SENSOR, FOLLOW_WINDOW_S, HANDING_OVER, HANDOVER_S, owner_of
from adchain_assets.chains import new_take_config
from adchain_assets.ledger import Ledger
from adchain_assets.outputs import output_names
from adchain_assets.plan import plan_with
from adchain_assets.references import Slot
from adchain_assets.resources import CampaignBriefs, ImageModel, VideoModel
from adchain_assets.sensors import plan_tick
from adchain_assets.settings import Settings
from adchain_assets.storage import CampaignFiles

from .conftest import definitions_for
from .test_regenerate import sampling_like_a_real_model

CAMPAIGN = "muse-portrait"  # 3 scenes, anchored: a new take of reference/scene_2 changes most of scenes 2 and 3
MAX_SCENES = 8
REVIEW = {"storyboard", "ad", "report"}


@pytest.fixture
def world(tmp_path, data_dir, instance, fake_gemini):
    sampling_like_a_real_model(fake_gemini)  # a new take is a new picture, as with the real model
    for other in data_dir.joinpath("briefs").glob("*.yaml"):  # one campaign: brief_sensor's tick is about it alone
        if other.stem != CAMPAIGN:
            other.unlink()
    defs = definitions_for(data_dir, max_scenes=MAX_SCENES, image_backend="gemini")
    instance.add_dynamic_partitions("campaigns", [CAMPAIGN])
    briefs = CampaignBriefs(data_dir=str(data_dir), max_scenes=MAX_SCENES)
    files = CampaignFiles(base_path=str(data_dir))
    models = ImageModel(backend="gemini", model=Settings().image_model), VideoModel()

    class World:
        pass

    w = World()
    w.defs, w.instance, w.data_dir, w.briefs, w.files, w.models = defs, instance, data_dir, briefs, files, models
    w.job = defs.resolve_job_def("campaign")
    w.cursor = None

    def tick():
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=w.cursor)
        w.cursor = result.cursor
        requested = {}
        for key in defs.resolve_asset_graph().get_all_asset_keys():
            for partition in result.get_requested_partitions(key):
                requested.setdefault(partition, set()).add(key.to_user_string())
        return result, requested

    def run(selection=None, run_config=None):
        result = w.job.execute_in_process(
            instance=instance, partition_key=CAMPAIGN, run_config=run_config or {}, raise_on_error=False,
            asset_selection=None if selection is None else [dg.AssetKey.from_user_string(s) for s in selection],
        )
        assert result.success, [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
        return result

    def plan():
        return plan_with(briefs.load(CAMPAIGN), files, *models)

    w.tick, w.run, w.plan = tick, run, plan
    return w


def made(result) -> list[str]:
    return sorted(e.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION")


def test_materialize_all_makes_the_brief_and_the_next_tick_makes_the_review_outputs(world):
    world.tick()  # the sensor was ticking before the run
    result = world.run()  # every asset of the job: 24 image slots, 8 clips, storyboard, report, ad
    images = [Slot(chain, k).key for k in range(1, 4) for chain in ("reference", "start", "end")]
    clips = [f"clip/scene_{k}" for k in range(1, 4)]
    assert made(result) == sorted(images + clips)
    assert not any((world.data_dir / "campaigns" / CAMPAIGN / chain / "scene_4.png").exists()
                   for chain in ("reference", "start", "end"))
    assert set(world.plan().outputs) == REVIEW

    _, requested = world.tick()
    assert requested == {CAMPAIGN: REVIEW}  # and nothing for the slots beyond the brief
    world.run(selection=sorted(REVIEW))
    assert world.plan().outputs == []
    _, requested = world.tick()
    assert requested == {}


def test_a_new_take_is_followed_by_exactly_the_plan_once(world):
    world.run(selection=output_names(3))  # the whole brief, as brief_sensor or `adchain materialize` runs it
    assert world.plan().outputs == []
    world.tick()
    before = {name: world.files.read_provenance(CAMPAIGN, name) for name in output_names(3)}
    calls_before = len(Ledger(str(world.data_dir)).calls(CAMPAIGN))

    world.run(selection=["reference/scene_2"], run_config=new_take_config(Slot("reference", 2)))
    plan = world.plan()
    loaded = world.briefs.load(CAMPAIGN)
    owner, why = owner_of(plan, loaded, world.files, now=__import__("time").time())
    assert owner == AUTOMATION, why
    # brief_sensor sees the same work and leaves it to follow_sensor: the two never launch it both.
    tick = plan_tick(world.briefs, world.files, *world.models, busy={})
    assert tick.runs == [], tick.notes
    assert any("left to follow_sensor" in note for note in tick.notes), tick.notes

    # while any run of the campaign is queued, starting or in progress, nothing (brief_sensor waits the same way)
    queued = world.instance.create_run_for_job(
        job_def=world.job, run_config={}, tags={"dagster/partition": CAMPAIGN})  # NOT_STARTED
    _, requested = world.tick()
    assert requested == {}
    world.instance.delete_run(queued.run_id)

    _, requested = world.tick()
    assert requested == {CAMPAIGN: set(plan.outputs)}
    # anchored mode: every image shown reference/scene_2 or what was made from it, their clips, the review
    assert set(plan.outputs) == {
        "reference/scene_3", "start/scene_2", "start/scene_3", "end/scene_2", "end/scene_3",
        "clip/scene_2", "clip/scene_3", "storyboard", "ad", "report",
    }
    followed = world.run(selection=sorted(requested[CAMPAIGN]))
    assert sorted(made(followed)) == sorted(plan.outputs)
    assert world.plan().outputs == []
    _, requested = world.tick()
    assert requested == {}, "asked twice for the same change"

    after = {name: world.files.read_provenance(CAMPAIGN, name) for name in output_names(3)}
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


def test_owner_of_hands_unfinished_follow_up_work_to_brief_sensor(world):
    world.run(selection=output_names(3))
    world.run(selection=["reference/scene_2"], run_config=new_take_config(Slot("reference", 2)))
    plan, loaded = world.plan(), world.briefs.load(CAMPAIGN)
    made_at = __import__("datetime").datetime.fromisoformat(
        world.files.read_provenance(CAMPAIGN, "reference/scene_2")["created_at"]).timestamp()
    assert owner_of(plan, loaded, world.files, made_at + 1)[0] == AUTOMATION
    assert owner_of(plan, loaded, world.files, made_at + FOLLOW_WINDOW_S + 1)[0] == HANDING_OVER
    assert owner_of(plan, loaded, world.files, made_at + HANDOVER_S + 1)[0] == BRIEF_SENSOR


def test_an_edited_brief_is_brief_sensors_even_right_after_a_new_take(world):
    world.run(selection=output_names(3))
    world.run(selection=["reference/scene_2"], run_config=new_take_config(Slot("reference", 2)))
    path = world.data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    path.write_text(path.read_text().replace("sage-green shelf", "white marble shelf"))
    plan, loaded = world.plan(), world.briefs.load(CAMPAIGN)
    owner, why = owner_of(plan, loaded, world.files, __import__("time").time())
    assert owner == BRIEF_SENSOR, why
    _, requested = world.tick()
    assert requested == {}
    tick = plan_tick(world.briefs, world.files, *world.models, busy={})
    assert [set(k.to_user_string() for k in run.asset_selection) for run in tick.runs] == [set(plan.outputs)]
