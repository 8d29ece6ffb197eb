"""A new take of one image: it and exactly its downstream images are remade, and the take is kept."""

import json

import pytest

from adchain_assets.defs.images import new_take_config
from adchain_assets.plan.references import Slot

from .helpers import (
    adchain, downstream_closure, run_campaign, run_selection, sampling_like_a_real_model, short_clips, snapshot,
)


def record(data_dir, key):
    return json.loads((data_dir / "campaigns" / "aurora-perfume" / f"{key}.json").read_text())


def test_regenerate_scene_two_then_full_materialize_keeps_the_new_take(data_dir, instance, fake_gemini):
    sampling_like_a_real_model(fake_gemini)
    short_clips(data_dir / "briefs" / "aurora-perfume.yaml")
    everything = run_selection(Slot(chain, k) for k in range(1, 5) for chain in ("reference", "start", "end"))
    assert run_campaign(data_dir, instance, "aurora-perfume", selection=everything, image_backend="gemini").success
    old = snapshot(data_dir, "aurora-perfume")
    slot = Slot("reference", 2)
    downstream = sorted(s for s in downstream_closure([slot], 8) if s.scene <= 4)
    assert [s.key for s in downstream] == [
        "end/scene_2", "end/scene_3", "end/scene_4", "reference/scene_2", "reference/scene_3",
        "reference/scene_4", "start/scene_2", "start/scene_3", "start/scene_4",
    ]
    fake_gemini.requests.clear()
    assert run_campaign(data_dir, instance, "aurora-perfume", selection=run_selection(downstream),
                        run_config=new_take_config(slot), image_backend="gemini").success
    assert record(data_dir, "reference/scene_2")["take"] == 1
    assert record(data_dir, "reference/scene_3")["take"] == 0
    new = snapshot(data_dir, "aurora-perfume")
    assert new["reference/scene_2.png"][0] != old["reference/scene_2.png"][0]
    for name in ("reference/scene_1.png", "start/scene_1.png", "end/scene_1.png"):
        assert new[name] == old[name]  # upstream of the new take: untouched
    # chain mode: only the reference chain is shown reference/scene_2's pixels; the frames' requests are unchanged
    assert sorted(r.prompt_text.split(" of an")[0] for r in fake_gemini.requests) == [
        "Reference image for scene 2", "Reference image for scene 3", "Reference image for scene 4",
    ]

    fake_gemini.requests.clear()
    assert run_campaign(data_dir, instance, "aurora-perfume", selection=everything, image_backend="gemini").success
    assert len(fake_gemini.requests) == 0
    assert record(data_dir, "reference/scene_2")["take"] == 1
    assert snapshot(data_dir, "aurora-perfume")["reference/scene_2.png"][0] == new["reference/scene_2.png"][0]


def test_regenerating_a_user_image_fails_clearly_in_the_graph(data_dir, instance):
    result = run_campaign(data_dir, instance, "muse-portrait", selection=run_selection([Slot("reference", 1)]),
                          run_config=new_take_config(Slot("reference", 1)))
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "reference/scene_1 is the brief's own reference_image" in failure.step_failure_data.error.message


@pytest.mark.subprocess
def test_regenerate_command(cli_env, data_dir):
    assert adchain(cli_env, "materialize", "aurora-perfume").returncode == 0
    before = snapshot(data_dir, "aurora-perfume")
    done = adchain(cli_env, "regenerate", "aurora-perfume", "--scene", "3", "--chain", "start")
    assert done.returncode == 0, done.stderr
    after = snapshot(data_dir, "aurora-perfume")
    changed = {name for name in after if after[name] != before[name]}
    # chain mode: the end frames are not shown the start frames, so their requests (and files) stay as they were
    assert changed == {"start/scene_3.png", "start/scene_4.png"}
    assert "0 outputs" not in done.stdout and "clip/scene_3" not in done.stderr
    assert json.loads((data_dir / "campaigns/aurora-perfume/start/scene_3.json").read_text())["take"] == 1

    user = adchain(cli_env, "regenerate", "muse-portrait", "--scene", "1")
    assert user.returncode == 2 and "reference/scene_1 is the brief's own reference_image" in user.stderr
    beyond = adchain(cli_env, "regenerate", "aurora-perfume", "--scene", "5")
    assert beyond.returncode == 2 and "the brief has scenes 1 to 4" in beyond.stderr
