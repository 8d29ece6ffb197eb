"""From frames to the ad: real MP4 clips per scene, the assembled ad, their lineage, and Veo's requests."""

import io
import json

import numpy as np
import pytest
from dagster import AssetKey, materialize
from PIL import Image

from adchain_assets.defs.images import new_take_config
from adchain_assets.defs.resources import VideoModel, current_plan
from adchain_assets.media.mp4 import probe, read_frames
from adchain_assets.plan.references import CHAINS, Slot

from .gemini_server import error_reply
from .helpers import definitions_for, downstream_closure, run_campaign, run_selection, short_clips
from .veo_server import FakeVeo

SCENES = [Slot(chain, k) for k in range(1, 5) for chain in CHAINS]


def frames_of(mp4: bytes) -> list[np.ndarray]:
    with read_frames(mp4) as (_, frames):
        return [frame.astype(float) for frame in frames]


def resized(png_path, size) -> np.ndarray:
    with Image.open(png_path) as image:
        return np.asarray(image.convert("RGB").resize(size)).astype(float)


def test_every_scene_gets_a_playable_clip_from_its_start_to_its_end_frame_and_the_ad_joins_them(data_dir, instance):
    brief = data_dir / "briefs" / "aurora-perfume.yaml"
    brief.write_text(brief.read_text().replace("    continuity: Same bedroom", "    duration_s: 2\n    continuity: Same bedroom"))
    assert run_campaign(data_dir, instance, "aurora-perfume", selection=run_selection(SCENES)).success
    root = data_dir / "campaigns" / "aurora-perfume"
    for k in range(1, 5):
        mp4 = (root / "clip" / f"scene_{k}.mp4").read_bytes()
        info = probe(mp4)
        assert info.codec == "h264" and (info.width, info.height) == (360, 640)
        assert info.frame_count == (48 if k == 2 else 96)
        frames = frames_of(mp4)
        start, end = resized(root / "start" / f"scene_{k}.png", (360, 640)), resized(root / "end" / f"scene_{k}.png", (360, 640))
        # preview frames of one scene differ mostly in their text, so "closer to its own frame" is the test
        assert np.abs(frames[0] - start).mean() < min(8, np.abs(frames[0] - end).mean())
        assert np.abs(frames[-1] - end).mean() < min(8, np.abs(frames[-1] - start).mean())
        record = json.loads((root / "clip" / f"scene_{k}.json").read_text())
        assert [i["asset"] for i in record["inputs"]] == [f"start/scene_{k}", f"end/scene_{k}"]
        assert record["inputs"][0]["sha256"] == json.loads((root / "start" / f"scene_{k}.json").read_text())["sha256"]
    ad = (root / "ad.mp4").read_bytes()
    ad_record = json.loads((root / "ad.json").read_text())
    assert probe(ad).codec == "h264"
    assert [c["asset"] for c in ad_record["clips"]] == [f"clip/scene_{k}" for k in range(1, 5)]
    # title + clips + the brand's end card - the five cross-fades
    assert ad_record["duration_s"] == pytest.approx(1.5 + 4 + 2 + 4 + 4 + 2.5 - 5 * 0.5, abs=0.05)
    clip_meta = instance.get_latest_materialization_event(AssetKey(["clip", "scene_3"])).asset_materialization.metadata
    assert clip_meta["poster"].value.startswith("![clip/scene_3](data:image/jpeg;base64,")
    assert clip_meta["duration_s"].value == 4.0
    ad_meta = instance.get_latest_materialization_event(AssetKey("ad")).asset_materialization.metadata
    assert ad_meta["posters"].value.startswith("![ad of aurora-perfume](data:image/jpeg;base64,")


def snapshot(root):
    return {p.name + p.parent.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.glob("clip/*.mp4")} | {
        "ad": ((root / "ad.mp4").read_bytes(), (root / "ad.mp4").stat().st_mtime_ns)
    }


def test_regenerating_a_start_frame_rerenders_the_clips_whose_frames_changed_and_the_ad(data_dir, instance):
    short_clips(data_dir / "briefs" / "aurora-perfume.yaml")
    assert run_campaign(data_dir, instance, "aurora-perfume", selection=run_selection(SCENES)).success
    root = data_dir / "campaigns" / "aurora-perfume"
    before = snapshot(root)
    last = Slot("start", 4)
    images = sorted(s for s in downstream_closure([last], 8) if s.scene <= 4)
    assert run_campaign(data_dir, instance, "aurora-perfume", selection=run_selection(images), run_config=new_take_config(last)).success
    after = snapshot(root)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {"scene_4.mp4clip", "ad"}


def test_veo_requests_carry_each_scene_start_frame_as_image_and_end_frame_as_last_frame(data_dir, instance, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "veo-test-key")
    with FakeVeo(polls_before_done=1) as veo:
        defs = definitions_for(data_dir, video_backend="veo")
        resources = {**defs.resources, "video_model": VideoModel(backend="veo", api_key="veo-test-key", base_url=veo.base_url, poll_interval_s=0.01, max_wait_s=30)}
        instance.add_dynamic_partitions("campaigns", ["aurora-perfume"])
        result = materialize(list(defs.assets), resources=resources, instance=instance, partition_key="aurora-perfume",
                             selection=run_selection(SCENES) + [AssetKey("storyboard_pdf"), AssetKey("deliverables")])
        assert result.success
        root = data_dir / "campaigns" / "aurora-perfume"
        assert len(veo.starts) == 4
        by_prompt = {start.prompt: start for start in veo.starts}
        for k in range(1, 5):
            record = json.loads((root / "clip" / f"scene_{k}.json").read_text())
            start = by_prompt[record["prompt"]]
            for sent, disk in ((start.image, root / "start" / f"scene_{k}.png"), (start.last_frame, root / "end" / f"scene_{k}.png")):
                with Image.open(io.BytesIO(sent)) as a, Image.open(disk) as b:
                    assert a.size == b.size and a.tobytes() == b.tobytes()
            assert start.aspect_ratio == "9:16"
            assert record["backend"] == "veo" and record["cost_usd"] > 0
        # The report and the PDF count the clips' spend: made after them, so a finished campaign's plan is empty.
        plan = current_plan(defs.resources["briefs"].load("aurora-perfume"), defs.resources["storage"],
                            defs.resources["image_model"], resources["video_model"])
        assert plan.outdated == [] and plan.held == []


def test_a_transient_veo_fault_is_retried_by_the_step_and_resumes_the_same_operation(data_dir, instance, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "veo-test-key")
    with FakeVeo(polls_before_done=1) as veo:
        defs = definitions_for(data_dir, video_backend="veo", step_retry_delay_s=0.0)
        model = VideoModel(backend="veo", api_key="veo-test-key", base_url=veo.base_url, poll_interval_s=0.01,
                           max_wait_s=30, initial_delay_s=0.01)
        veo.fail_downloads(*[error_reply(503, "overloaded")] * 5)  # outlasts the generator's five attempts
        instance.add_dynamic_partitions("campaigns", ["aurora-perfume"])
        result = materialize(list(defs.assets), resources={**defs.resources, "video_model": model}, instance=instance,
                             partition_key="aurora-perfume",
                             selection=[AssetKey(Slot(c, 1).key_path) for c in CHAINS] + [AssetKey(["clip", "scene_1"])],
                             raise_on_error=False)
        assert result.success, [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
        retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert [e.step_key for e in retried] == ["clip__scene_1"]
        assert veo.start_calls == 1  # the retried step resumed the stored operation


def test_the_step_retry_delay_setting_reaches_every_image_and_clip_step(data_dir):
    defs = definitions_for(data_dir, step_retry_delay_s=7.0, max_scenes=2)
    for key in ["reference/scene_1", "end/scene_2", "clip/scene_1", "clip/scene_2"]:
        policy = defs.resolve_assets_def(AssetKey.from_user_string(key)).op.retry_policy
        assert policy is not None and policy.delay == 7.0, key
