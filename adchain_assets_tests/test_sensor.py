"""brief_sensor: every tick brings each campaign in line with its brief, from what is stored (issue 9)."""

import json

import pytest

from adchain_assets.defs.jobs import CAMPAIGN_JOB
from adchain_assets.store.snapshots import BRIEF_TAG

from .helpers import (
    FIRST_RUN,
    IMAGES,
    SIX,
    definitions_for,
    edit,
    execute,
    images_of,
    run_campaign,
    selected,
    short_clips,
    small_images,
    snapshot,
    tick,
)


@pytest.fixture
def one_brief(data_dir):
    """The aurora sample alone, with one-second clips."""
    (data_dir / "briefs" / "muse-portrait.yaml").unlink()
    short_clips(data_dir / "briefs" / "aurora-perfume.yaml")
    return data_dir


def test_a_new_brief_adds_its_partition_and_requests_everything_in_the_same_tick(one_brief, instance):
    defs = definitions_for(one_brief, max_scenes=6)
    result = tick(defs, instance)
    [partitions] = result.dynamic_partitions_requests
    assert list(partitions.partition_keys) == ["aurora-perfume"]
    [request] = result.run_requests
    assert request.partition_key == "aurora-perfume"
    assert selected(result)["aurora-perfume"] == FIRST_RUN
    sha = request.tags[BRIEF_TAG]
    assert (one_brief / "campaigns" / "aurora-perfume" / "briefs" / f"{sha}.yaml").read_bytes() == (
        one_brief / "briefs" / "aurora-perfume.yaml").read_bytes()
    assert execute(defs, instance, request).success
    assert (one_brief / "campaigns" / "aurora-perfume" / "storyboard.png").exists()
    again = tick(defs, instance)
    assert not again.run_requests and "every campaign is up to date" in again.skip_reason.skip_message


@pytest.mark.parametrize("mode, paid", [("chain", {"reference/scene_3", "reference/scene_4"}), ("anchored", SIX)])
def test_editing_scene_three_reference_text_costs_exactly_what_changed(one_brief, instance, fake_gemini, mode, paid):
    small_images(fake_gemini)  # what is paid for depends on the requests, not on the pictures' size
    brief = one_brief / "briefs" / "aurora-perfume.yaml"
    edit(brief, "reference_mode: chain", f"reference_mode: {mode}")
    defs = definitions_for(one_brief, image_backend="gemini")
    first = tick(defs, instance)
    assert execute(defs, instance, first.run_requests[0]).success
    assert len(fake_gemini.requests) == 12
    before = snapshot(one_brief, "aurora-perfume")

    edit(brief, "The woman spraying the perfume", "The woman gently spraying the perfume")
    second = tick(defs, instance)
    # chain mode: start/end frames of scenes 3 and 4 do not show reference/scene_3, so only what shows it waits
    assert images_of(selected(second)["aurora-perfume"]) == (SIX if mode == "anchored" else paid)
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
    assert not tick(defs, instance).run_requests


def test_rematerializing_an_unchanged_campaign_makes_no_model_call(one_brief, instance, fake_gemini):
    small_images(fake_gemini)  # what is called depends on the requests, not on the pictures' size
    assert run_campaign(one_brief, instance, "aurora-perfume", image_backend="gemini").success
    assert len(fake_gemini.requests) == 12
    assert run_campaign(one_brief, instance, "aurora-perfume", image_backend="gemini").success
    assert len(fake_gemini.requests) == 12


def test_editing_the_look_touches_every_image(one_brief, instance):
    defs = definitions_for(one_brief)
    assert execute(defs, instance, tick(defs, instance).run_requests[0]).success
    edit(one_brief / "briefs" / "aurora-perfume.yaml", "mood: intimate, luminous", "mood: bold")
    assert images_of(selected(tick(defs, instance))["aurora-perfume"]) == IMAGES


def test_one_bad_brief_is_reported_and_the_good_ones_still_run(data_dir, instance):
    aurora = data_dir / "briefs" / "aurora-perfume.yaml"  # made broken; muse-portrait is the good one
    (data_dir / "briefs" / "broken.yaml").write_text(
        aurora.read_text().replace("subjects: [woman, bottle]", "subjects: [man, bottle]", 1))
    aurora.unlink()
    short_clips(data_dir / "briefs" / "muse-portrait.yaml")
    defs = definitions_for(data_dir)
    result = tick(defs, instance)
    assert set(selected(result)) == {"muse-portrait"}
    for request in result.run_requests:
        assert execute(defs, instance, request).success
    problem = f"{data_dir / 'briefs' / 'broken.yaml'}: scenes[1].subjects[0]: subject 'man' is not defined under subjects (defined: bottle, woman)"
    quiet = tick(defs, instance)
    assert problem in quiet.skip_reason.skip_message  # still bad, still said
    edit(data_dir / "briefs" / "broken.yaml", "subjects: [man, bottle]", "subjects: [woman, bottle]")
    fixed = tick(defs, instance)
    assert set(selected(fixed)) == {"broken"}


def test_a_deleted_brief_deletes_nothing_and_says_so(one_brief, instance):
    defs = definitions_for(one_brief)
    first = tick(defs, instance)
    assert execute(defs, instance, first.run_requests[0]).success
    images = snapshot(one_brief, "aurora-perfume")
    (one_brief / "briefs" / "aurora-perfume.yaml").unlink()
    second = tick(defs, instance)
    assert "aurora-perfume: its brief was deleted; nothing was deleted" in second.skip_reason.skip_message
    assert snapshot(one_brief, "aurora-perfume") == images
    assert instance.has_dynamic_partition("campaigns", "aurora-perfume")


def test_a_campaign_with_a_run_in_progress_is_not_requested_again(one_brief, instance):
    from dagster import DagsterRunStatus

    defs = definitions_for(one_brief)
    [request] = tick(defs, instance).run_requests
    job = defs.resolve_job_def(CAMPAIGN_JOB)
    run = instance.create_run_for_job(job, tags={"dagster/partition": "aurora-perfume"}, status=DagsterRunStatus.STARTED)
    waiting = tick(defs, instance)
    assert not waiting.run_requests and f"waiting for run {run.run_id}" in waiting.skip_reason.skip_message
    instance.report_run_canceled(run)
    [again] = tick(defs, instance).run_requests
    assert again.run_key == request.run_key  # the same work: Dagster drops it if the first was launched
