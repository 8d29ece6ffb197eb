"""brief_sensor: new briefs start themselves; an edit costs exactly the images downstream of it."""

import json
import os

import pytest
from dagster import SensorResult, build_sensor_context

from adchain_assets.chains import STORYBOARD_KEY
from adchain_assets.definitions import CAMPAIGN_JOB

from .conftest import definitions_for
from .test_materialize import run_campaign

SIX = {"reference/scene_3", "reference/scene_4", "start/scene_3", "start/scene_4", "end/scene_3", "end/scene_4"}


def tick(defs, instance, cursor=None) -> SensorResult:
    sensor = defs.resolve_sensor_def("brief_sensor")
    context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources={"briefs": defs.resources["briefs"]})
    result = sensor(context)
    # what the daemon does with a result: add the partitions it asks for
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def requested(result) -> dict[str, set[str]]:
    """The images each run request selects (besides them: the storyboard, the clips of their scenes, the ad)."""
    return {
        request.partition_key: {
            key.to_user_string() for key in request.asset_selection if key.path[0] in ("reference", "start", "end")
        }
        for request in result.run_requests or []
    }


def execute(defs, instance, request):
    return defs.resolve_job_def(CAMPAIGN_JOB).execute_in_process(
        partition_key=request.partition_key, asset_selection=request.asset_selection, instance=instance
    )


def snapshot(data_dir, campaign):
    root = data_dir / "campaigns" / campaign
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("scene_*.png")
    }


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    stat = path.stat()  # a later mtime even on coarse clocks
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def one_brief(data_dir):
    (data_dir / "briefs" / "muse-portrait.yaml").unlink()
    return data_dir


def test_a_new_brief_adds_its_partition_and_requests_its_run_in_the_same_tick(one_brief, instance):
    defs = definitions_for(one_brief, max_scenes=6)
    result = tick(defs, instance)
    [partitions] = result.dynamic_partitions_requests
    assert list(partitions.partition_keys) == ["aurora-perfume"]
    [request] = result.run_requests
    assert request.partition_key == "aurora-perfume"
    assert requested(result)["aurora-perfume"] == {f"{c}/scene_{k}" for c in ("reference", "start", "end") for k in range(1, 5)}
    assert STORYBOARD_KEY in request.asset_selection
    assert execute(defs, instance, request).success
    assert (one_brief / "campaigns" / "aurora-perfume" / "storyboard.png").exists()
    again = tick(defs, instance, result.cursor)
    assert not again.run_requests and "no brief changed" in again.skip_reason.skip_message


@pytest.mark.parametrize("mode, paid", [("chain", {"reference/scene_3", "reference/scene_4"}), ("anchored", SIX)])
def test_editing_scene_three_reference_text_costs_exactly_what_changed(one_brief, instance, fake_gemini, mode, paid):
    brief = one_brief / "briefs" / "aurora-perfume.yaml"
    edit(brief, "reference_mode: chain", f"reference_mode: {mode}")
    defs = definitions_for(one_brief, image_backend="gemini")
    first = tick(defs, instance)
    assert execute(defs, instance, first.run_requests[0]).success
    assert len(fake_gemini.requests) == 12
    before = snapshot(one_brief, "aurora-perfume")

    edit(brief, "The woman spraying the perfume", "The woman gently spraying the perfume")
    second = tick(defs, instance, first.cursor)
    assert requested(second) == {"aurora-perfume": SIX}
    fake_gemini.requests.clear()
    assert execute(defs, instance, second.run_requests[0]).success

    called = {json.loads((one_brief / "campaigns" / "aurora-perfume" / f"{key}.json").read_text())["prompt"] for key in paid}
    assert {request.prompt_text for request in fake_gemini.requests} == called
    assert len(fake_gemini.requests) == len(paid)
    after = snapshot(one_brief, "aurora-perfume")
    for name, (data, mtime) in before.items():
        key = name.removesuffix(".png")
        if key not in SIX:
            assert after[name] == (data, mtime), f"{key} is outside the selection and must not be touched"
        elif key not in paid:
            assert after[name][0] == data, f"{key}'s request did not change, so its bytes must not"
            record = json.loads((one_brief / "campaigns" / "aurora-perfume" / f"{key}.json").read_text())
            assert record["cache_hit"] is True and record["cost_usd"] == 0


def test_rematerializing_an_unchanged_campaign_makes_no_model_call(one_brief, instance, fake_gemini):
    assert run_campaign(one_brief, instance, "aurora-perfume", image_backend="gemini").success
    assert len(fake_gemini.requests) == 12
    assert run_campaign(one_brief, instance, "aurora-perfume", image_backend="gemini").success
    assert len(fake_gemini.requests) == 12


def test_an_edit_that_changes_no_request_requests_nothing(one_brief, instance):
    defs = definitions_for(one_brief)
    first = tick(defs, instance)
    edit(one_brief / "briefs" / "aurora-perfume.yaml", "title: Aurora Eau de Parfum", "title: Aurora Parfum")
    second = tick(defs, instance, first.cursor)
    assert not second.run_requests
    assert "no image's request changed" in second.skip_reason.skip_message


def test_editing_the_look_touches_every_image(one_brief, instance):
    defs = definitions_for(one_brief)
    first = tick(defs, instance)
    edit(one_brief / "briefs" / "aurora-perfume.yaml", "mood: intimate, luminous", "mood: bold")
    assert len(requested(tick(defs, instance, first.cursor))["aurora-perfume"]) == 12


def test_one_bad_brief_is_reported_and_the_good_ones_still_run(data_dir, instance):
    (data_dir / "briefs" / "broken.yaml").write_text(
        (data_dir / "briefs" / "aurora-perfume.yaml").read_text().replace("subjects: [woman, bottle]", "subjects: [man, bottle]", 1)
    )
    defs = definitions_for(data_dir)
    result = tick(defs, instance)
    assert set(requested(result)) == {"aurora-perfume", "muse-portrait"}
    cursor = json.loads(result.cursor)
    [problem] = cursor["broken"]["problems"]
    assert problem == f"{data_dir / 'briefs' / 'broken.yaml'}: scenes[1].subjects[0]: subject 'man' is not defined under subjects (defined: bottle, woman)"

    quiet = tick(defs, instance, result.cursor)
    assert problem in quiet.skip_reason.skip_message  # still bad, still said
    edit(data_dir / "briefs" / "broken.yaml", "subjects: [man, bottle]", "subjects: [woman, bottle]")
    fixed = tick(defs, instance, quiet.cursor)
    assert set(requested(fixed)) == {"broken"}
    assert "problems" not in json.loads(fixed.cursor)["broken"]


def test_a_deleted_brief_deletes_nothing_and_says_so(one_brief, instance):
    defs = definitions_for(one_brief)
    first = tick(defs, instance)
    assert execute(defs, instance, first.run_requests[0]).success
    images = snapshot(one_brief, "aurora-perfume")
    (one_brief / "briefs" / "aurora-perfume.yaml").unlink()
    second = tick(defs, instance, first.cursor)
    assert "aurora-perfume.yaml was deleted; nothing was deleted" in second.skip_reason.skip_message
    assert snapshot(one_brief, "aurora-perfume") == images
    assert instance.has_dynamic_partition("campaigns", "aurora-perfume")


def test_a_brief_version_is_never_launched_twice(one_brief, instance):
    defs = definitions_for(one_brief)
    first = tick(defs, instance)
    path = one_brief / "briefs" / "aurora-perfume.yaml"
    edit(path, "mood: intimate, luminous", "mood: bold")
    second = tick(defs, instance, first.cursor)
    edit(path, "mood: bold", "mood: intimate, luminous")
    third = tick(defs, instance, second.cursor)
    keys = [r.run_key for r in first.run_requests + second.run_requests + third.run_requests]
    assert keys[0] == keys[2] and keys[0] != keys[1]  # back to version 1: same key, so Dagster won't launch it again
