"""Placements: every extra shape of a campaign from the same frames. Bad shapes are brief errors; each placement
frame is recomposed from exactly its master frame's pixels in the named ratio; Veo makes 16:9 and 9:16 and the
rest is cropped from the closest shape, never cutting a face; an ad per placement at its size; exact lineage; the
placements job launches one placement."""

import hashlib
import io
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from adchain_assets.brief.model import BriefError, LoadedBrief, parse_brief
from adchain_assets.cli.main import main
from adchain_assets.defs.jobs import PLACEMENTS_JOB, asset_keys
from adchain_assets.defs.placement_clips import CROP_FAILED, cropped_clip
from adchain_assets.defs.resources import Storage, VideoModel, current_plan
from adchain_assets.media.crop import CropError, boxes_in_clip, crop_window
from adchain_assets.media.endcard import EndCard, render_end_card
from adchain_assets.media.layout import safe_area
from adchain_assets.media.mp4 import probe, read_frames
from adchain_assets.plan import catalogue
from adchain_assets.plan.calls import LatestCalls
from adchain_assets.plan.estimate import estimate_plan
from adchain_assets.plan.placements import clip_source
from adchain_assets.plan.plan import Stored, plan_campaign
from adchain_assets.plan.requests import Maker, Parent, build_request, outputs_of, parents_of, pixel_digest
from adchain_assets.providers.video.base import VideoRequest
from adchain_assets.providers.video.preview import PreviewVideoGenerator
from adchain_assets.store.files import CampaignFiles, StoredOutput, sha256
from adchain_assets.store.ledger import CallMeter, Ledger

from .helpers import SAMPLE_BRIEFS, definitions_for, edit, execute, small_images, tick
from .veo_server import FakeVeo

CAMPAIGN = "atlas-trail"
FACES = Path(__file__).parent / "testdata" / "faces"
BRIEF = """\
title: Atlas Trail - Run Further
aspect_ratio: "16:9"
placements: ["9:16", "1:1"]
look:
  color_palette: moss green, slate grey, signal orange
subjects:
  - id: shoe
    kind: product
    description: Trail running shoe, size 42, moss-green mesh upper, orange heel tab printed 'ATLAS', grey lugged sole
scenes:
  - subjects: [shoe]
    reference: The shoe on a mossy rock by a mountain stream
    start: Close-up of the orange heel tab, water droplets on the mesh
    end: The shoe from the side, the lugged sole gripping the rock
  - reference: A rocky ridge at dawn, mist in the valley
    start: Wet granite catching the first light
    end: The sun clearing the ridge
  - reference: A mountain hut's bench at dusk
    start: A steaming mug on the bench
    end: The hut's window glowing, mountains behind
"""
VEO = Maker("veo", "veo-3.1-fast-generate-001")
IMAGE = Maker("gemini", "gemini-3.1-flash-image")


def brief_of(text: str, path: Path = Path("/briefs/atlas-trail.yaml")) -> LoadedBrief:
    return LoadedBrief(CAMPAIGN, path, parse_brief(text, file=str(path), brief_dir=None, max_scenes=8), "b" * 64)


def pixels(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as image:
        return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def problems(text: str) -> list[str]:
    try:
        parse_brief(text, file="b.yaml", brief_dir=None, max_scenes=8)
    except BriefError as error:
        return [f"{p.field}: {p.reason}" for p in error.problems]
    return []


# --- bad input ---------------------------------------------------------------------------------------------------


def test_an_unknown_a_duplicate_or_the_masters_own_shape_is_a_brief_error_naming_it(monkeypatch):
    listed = BRIEF.replace('placements: ["9:16", "1:1"]', 'placements: ["9:16", "7:3", "9:16", "16:9", "4:5"]')
    assert problems(listed) == [
        "placements[1]: '7:3' is not supported; use one of 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9",
        "placements[2]: '9:16' is listed twice",
        "placements[3]: '16:9' is the master's aspect_ratio; list only the extra shapes",
    ]
    assert problems(BRIEF.replace('["9:16", "1:1"]', "[9:16]"))[0].startswith("placements: shapes must be quoted")
    # shapes the image model cannot make are refused against the catalogue; a shape Veo cannot make is cropped
    entry = {"makes": "image", "aspect_ratios": ["16:9", "9:16"]}
    monkeypatch.setattr(catalogue, "model_entry", lambda model: entry if model == "narrow-image" else None)
    found = catalogue.problems_for(brief_of(BRIEF).brief, "narrow-image", None, file="b.yaml")
    assert [(p.field, p.reason) for p in found] == [
        ("placements[1]", "'1:1': image model narrow-image makes 16:9, 9:16 (change the brief, or ADCHAIN_IMAGE_MODEL)")]


# --- pure parts --------------------------------------------------------------------------------------------------


def test_a_crop_keeps_every_face_whole_and_centres_the_subjects():
    assert crop_window((360, 640), "1:1").to_json() == {"x": 0, "y": 140, "width": 360, "height": 360}
    window = crop_window((360, 640), "1:1", faces=[(100, 60, 180, 140), (150, 300, 230, 390)])
    assert window.top <= 60 and window.top + window.height >= 390 and window.top == 45  # both faces, centred
    # a face near the edge pulls the window to it; products are kept when they fit along with the faces
    assert crop_window((640, 360), "1:1", faces=[(560, 40, 630, 120)]).left == 280
    assert crop_window((360, 640), "4:5", keep=[(0, 520, 360, 640)]).top == 190
    assert crop_window((360, 640), "4:5", faces=[(20, 10, 80, 70)], keep=[(0, 520, 360, 640)]).top == 0
    with pytest.raises(CropError, match=r"the faces span 500 px from top to bottom .* a 1:1 window of it is 360 px"):
        crop_window((360, 640), "1:1", faces=[(100, 20, 180, 100), (100, 440, 180, 520)])
    # boxes found on a 768x1344 frame, in the pixels of the 360x640 clip made from it (scaled to cover, centred)
    scale = 640 / 1344  # covers 360 px of width with 365.7: 2.9 px cut each side
    mapped = boxes_in_clip([(0, 0, 768, 1344), (384, 672, 480, 768)], (768, 1344), (360, 640))
    assert mapped == [(0.0, 0.0, 360.0, 640.0), pytest.approx((180.0, 320.0, 180 + 96 * scale, 320 + 96 * scale))]


def test_a_shape_veo_cannot_make_is_cropped_from_the_closest_shape_it_makes():
    brief = brief_of(BRIEF.replace('["9:16", "1:1"]', '["9:16", "1:1", "4:5", "5:4"]')).brief
    makes = frozenset({"16:9", "9:16"})
    assert {s: clip_source(brief, s, makes) for s in brief.placements} == {
        "9:16": None, "1:1": "9:16", "4:5": "9:16", "5:4": "16:9"}  # 1:1 is a tie: the taller shape
    assert clip_source(brief_of(BRIEF.replace('"9:16", ', "")).brief, "1:1", makes) == "16:9"  # the master
    assert clip_source(brief, "1:1", None) is None  # the preview makes every shape


def test_a_placement_frames_request_shows_its_master_frame_then_the_sheets_within_the_limits():
    sheets = BRIEF.replace('aspect_ratio: "16:9"', 'aspect_ratio: "16:9"\nreference_mode: sheets').replace(
        "subjects:\n  - id: shoe", "subjects:\n  - id: runner\n    kind: character\n    description: Woman, 30 years"
        " old, short red hair, green eyes, freckles, lean build, black running vest with a white stripe\n  - id: shoe"
    ).replace("  - subjects: [shoe]\n    reference: The shoe", "  - subjects: [runner, shoe]\n    reference: The shoe")
    loaded = brief_of(sheets)
    name = "placements/9x16/start/scene_1"
    assert parents_of(name, loaded, IMAGE) == ["start/scene_1", "subjects/runner", "subjects/shoe"]
    parents = {p: Parent(p, {"sha256": p[0] * 64, "pixels_sha256": f"pixels of {p}"}) for p in parents_of(name, loaded, IMAGE)}
    request = build_request(name, loaded, parents, image_maker=IMAGE)
    (candidate,) = request.candidates
    assert candidate["aspect_ratio"] == "9:16"
    assert candidate["references"] == ["pixels of start/scene_1", "pixels of subjects/runner", "pixels of subjects/shoe"]
    prompt = candidate["prompt"]
    assert prompt.startswith("The 9:16 version of the start frame of scene 1 of an advertising campaign: Close-up")
    assert "Image 1: the start frame of scene 1 in 16:9, the frame to recompose." in prompt
    assert "Image 2: the runner (character reference sheet). Image 3: the shoe (product packshot)." in prompt
    assert "Recompose image 1 as a 9:16 (portrait) frame" in prompt and "keep every face" in prompt
    assert "Wet granite" not in prompt  # never another scene's text
    # a model that takes two references: the master frame, then the character's sheet
    limited = Maker("gemini", "gemini-2.5-flash-image")
    assert parents_of(name, loaded, limited)[:2] == ["start/scene_1", "subjects/runner"]


def test_placement_outputs_are_listed_parents_first_and_live_in_their_folder(tmp_path):
    names = outputs_of(brief_of(BRIEF).brief)
    placements = [n for n in names if n.startswith("placements/")]
    assert len(placements) == 2 * 3 * 2 + 2 * 3 + 2 * 2 and names[-3:] == ["storyboard_pdf", "report", "deliverables"]
    for name in placements:  # parents first, for every video model
        for maker in (VEO, Maker("preview", "preview-dissolve-v1")):
            assert all(names.index(p) < names.index(name) for p in parents_of(name, brief_of(BRIEF), IMAGE, maker))
    files = CampaignFiles(str(tmp_path))
    root = tmp_path / "campaigns" / CAMPAIGN / "placements"
    assert str(files.output_path(CAMPAIGN, "placements/9x16/start/scene_2")) == str(root / "9x16/start/scene_2.png")
    assert str(files.output_path(CAMPAIGN, "placements/1x1/clip/scene_2")) == str(root / "1x1/clip/scene_2.mp4")
    assert str(files.output_path(CAMPAIGN, "placements/1x1/ad")) == str(root / "1x1/ad.mp4")
    assert str(files.output_path(CAMPAIGN, "placements/1x1/storyboard")) == str(root / "1x1/storyboard.png")
    assert asset_keys(["placements/9x16/start/scene_2", "placements/1x1/start/scene_2", "placements/1x1/ad"]) == [
        dg.AssetKey(["placements", "start", "scene_2"]), dg.AssetKey(["placements", "ad"])]


def test_the_graph_has_one_placement_asset_per_slot_whatever_the_shapes(tmp_path):
    defs = definitions_for(tmp_path, max_scenes=2)
    graph = defs.resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey.from_user_string(key)).parent_keys}

    assert parents("placements/start/scene_2") == {"start/scene_2", "subjects"}
    assert parents("placements/clip/scene_2") == {"placements/start/scene_2", "placements/end/scene_2", "clip/scene_2"}
    assert parents("placements/ad") == {"placements/clip/scene_1", "placements/clip/scene_2"}
    assert parents("placements/storyboard") == {f"placements/{c}/scene_{k}" for c in ("start", "end") for k in (1, 2)}
    assert {"placements/start/scene_1", "placements/clip/scene_2"} <= parents("report")
    job = defs.resolve_job_def(PLACEMENTS_JOB)  # every placement asset; which placements: one field for the run
    choice = job.run_config_schema.config_type.fields["resources"].config_type.fields["placement_choice"]
    assert not choice.is_required and list(choice.config_type.fields["config"].config_type.fields) == ["placements"]


# --- a crop that would cut a face ----------------------------------------------------------------------------------


def two_faces_frame(size=(768, 1344)) -> bytes:
    """A portrait frame with one face near the top and one near the bottom: no square window holds both."""
    frame = Image.new("RGB", size, (40, 60, 70))
    for name, top in (("obama_1.jpg", 20), ("biden_1.jpg", size[1] - 520)):
        with Image.open(FACES / name) as photo:
            face = photo.convert("RGB")
            face.thumbnail((400, 400))
            frame.paste(face, ((size[0] - face.width) // 2, top))
    buffer = io.BytesIO()
    frame.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_crop_that_would_cut_a_face_fails_that_clip_naming_why_and_is_held(tmp_path):
    loaded = brief_of(BRIEF)
    png = two_faces_frame()
    record = {"backend": "gemini", "width": 768, "height": 1344, "sha256": sha256(png), "pixels_sha256": pixel_digest(png)}
    frames = {name: StoredOutput(png, record) for name in ("placements/9x16/start/scene_2", "placements/9x16/end/scene_2")}
    clip = PreviewVideoGenerator().generate(VideoRequest("", png, png, "9:16", duration_s=1.0)).mp4
    parents = {"placements/9x16/clip/scene_2": StoredOutput(clip, {"sha256": sha256(clip)}), **frames}
    name = "placements/1x1/clip/scene_2"
    assert list(parents) == parents_of(name, loaded, video_maker=VEO)
    request = build_request(name, loaded, {n: Parent(n, s.provenance) for n, s in parents.items()}, video_maker=VEO)
    storage, done = Storage(url=str(tmp_path)), {"failed": []}
    meter = CallMeter(storage.ledger, CAMPAIGN, name, request.fingerprint)
    assert cropped_clip(loaded, name, "1:1", 2, parents, request, storage, meter, done) is None
    (reason,) = done["failed"]
    assert re.match(r"placements/1x1/clip/scene_2: cannot crop it from placements/9x16/clip/scene_2: the faces span"
                    r" \d+ px from top to bottom .* a 1:1 window of it is 360 px, so a face would be cut", reason), reason
    held = LatestCalls(Ledger(str(tmp_path)).calls(CAMPAIGN)).refusal(name, request.call_keys)
    assert held is not None and held.outcome == CROP_FAILED and held.cost_usd == 0.0  # the plan holds it
    # 4:5 is tall enough for both faces: cropped, with the window and the clip it came from in its provenance
    name = "placements/4x5/clip/scene_2"
    request = build_request(name, loaded, {n: Parent(n, s.provenance) for n, s in parents.items()}, video_maker=VEO)
    meter = CallMeter(storage.ledger, CAMPAIGN, name, request.fingerprint)
    mp4, provenance = cropped_clip(loaded, name, "4:5", 2, parents, request, storage, meter, done)
    assert (probe(mp4).width, probe(mp4).height) == (360, 450) and provenance["faces_kept"] == 4  # 2 per frame
    assert provenance["cropped_from"] == "placements/9x16/clip/scene_2"
    window = provenance["window"]
    assert (window["x"], window["width"], window["height"], window["of"]) == (0, 360, 450, "360x640")
    assert 0 < window["y"] < 640 - 450


# --- a campaign against the local servers --------------------------------------------------------------------------


def outputs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.suffix in (".png", ".mp4", ".csv")
            and "briefs" not in p.parts}


def run_tick(defs, instance) -> set[str]:
    result = tick(defs, instance)
    for request in result.run_requests:
        outcome = execute(defs, instance, request)
        assert outcome.success, [e.step_failure_data.error.message for e in outcome.all_events if e.is_step_failure]
    return {key.to_user_string() for request in result.run_requests for key in request.asset_selection}


def test_a_16_9_campaign_with_9_16_and_1_1_placements(tmp_path, instance, fake_gemini, monkeypatch, capsys):
    data = tmp_path / "data"
    (data / "briefs").mkdir(parents=True)
    brief = data / "briefs" / f"{CAMPAIGN}.yaml"
    brief.write_text(BRIEF)
    root = data / "campaigns" / CAMPAIGN
    small_images(fake_gemini)  # the checks of 21 full-size frames would take most of the test's time
    with FakeVeo() as veo:
        video = VideoModel(backend="veo", api_key="test-key-not-secret", base_url=veo.base_url, poll_interval_s=0.01)
        defs = definitions_for(data, image_backend="gemini", max_scenes=3, resources={"video_model": video})
        run_tick(defs, instance)

        masters = [r for r in fake_gemini.requests if not r.prompt_text.startswith("The ")]
        placed = [r for r in fake_gemini.requests if r.prompt_text.startswith("The ")]
        assert len(masters) == 9 and len(placed) == 12  # 6 master frames (and 3 reference images), 12 recomposed
        assert Counter(r.aspect_ratio for r in placed) == {"9:16": 6, "1:1": 6}
        for request in placed:
            shape, chain, k = re.match(r"The (\S+) version of the (start|end) frame of scene (\d)", request.prompt_text).groups()
            (shown,) = request.images  # exactly the master frame's pixels
            assert pixels(shown) == pixels((root / chain / f"scene_{k}.png").read_bytes())
            assert request.aspect_ratio == shape
            made = json.loads((root / "placements" / shape.replace(":", "x") / chain / f"scene_{k}.json").read_text())
            assert made["references"] == [{"asset": f"{chain}/scene_{k}", "sha256": sha256((root / chain / f"scene_{k}.png").read_bytes())}]
            assert made["placement"] == shape and made["chain"] == chain and made["scene"] == int(k)
        product = json.loads((root / "placements/1x1/start/scene_1.json").read_text())["consistency"]["shoe"]
        assert product["anchor"] == "start/scene_1" and product["kind"] == "product"  # scored against its master

        assert Counter(start.aspect_ratio for start in veo.starts) == {"16:9": 3, "9:16": 3}  # none for 1:1
        sizes = {name: (probe(root.joinpath(name).read_bytes()).width, probe(root.joinpath(name).read_bytes()).height)
                 for name in ("ad.mp4", "placements/9x16/ad.mp4", "placements/1x1/ad.mp4")}
        assert sizes == {"ad.mp4": (640, 360), "placements/9x16/ad.mp4": (360, 640), "placements/1x1/ad.mp4": (360, 360)}
        for k in range(1, 4):
            crop = json.loads((root / f"placements/1x1/clip/scene_{k}.json").read_text())
            source = json.loads((root / f"placements/9x16/clip/scene_{k}.json").read_text())
            assert crop["cropped_from"] == f"placements/9x16/clip/scene_{k}" and source["backend"] == "veo"
            assert crop["window"] == {"x": 0, "y": 140, "width": 360, "height": 360, "of": "360x640"}
            assert crop["inputs"][0] == {"asset": crop["cropped_from"], "sha256": source["sha256"]}
        assert (root / "placements/1x1/storyboard.png").is_file() and (root / "placements/9x16/storyboard.json").is_file()
        for shape in ("9x16", "1x1"):  # each placement's ad is handed over beside the master's
            assert (root / f"deliverables/ad_{shape}.mp4").read_bytes() == (root / f"placements/{shape}/ad.mp4").read_bytes()

        monkeypatch.setenv("ADCHAIN_DATA_DIR", str(data))
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
        assert main(["status", CAMPAIGN, "--json"]) == 0
        status = json.loads(capsys.readouterr().out)["outputs"]
        for shape in ("9x16", "1x1"):
            for inner in ("start/scene_3", "end/scene_1", "clip/scene_2", "ad", "storyboard"):
                assert status[f"placements/{shape}/{inner}"]["state"] == "made", (shape, inner)
        assert not run_tick(defs, instance)  # at rest

        # scene 2's start text: its master frame and placement frames, and what follows them; nothing of scene 1
        before, calls, starts = outputs(root), len(fake_gemini.requests), len(veo.starts)
        edit(brief, "Wet granite catching the first light", "Frost on the granite, the first light on it")
        run_tick(defs, instance)
        after = outputs(root)
        changed = {name for name in after if after[name] != before.get(name)}
        # start/scene_3 is shown start/scene_2 (the CONTRACT's chain), so scene 3's start and its clips follow
        frames = {f"{where}start/scene_{k}.png" for k in (2, 3) for where in ("", "placements/9x16/", "placements/1x1/")}
        clips = {f"{where}clip/scene_{k}.mp4" for k in (2, 3) for where in ("", "placements/9x16/", "placements/1x1/")}
        finals = {f"{where}{name}" for where in ("", "placements/9x16/", "placements/1x1/") for name in ("ad.mp4", "storyboard.png")}
        handed = {f"deliverables/{name}" for name in ("report.csv", "ad.mp4", "ad_9x16.mp4", "ad_1x1.mp4")}
        assert changed == frames | clips | finals | {"report.csv"} | handed
        assert len(fake_gemini.requests) - calls == 2 + 4 and len(veo.starts) - starts == 4

        # adding a placement makes only its work; removing one deletes nothing
        edit(brief, '["9:16", "1:1"]', '["9:16", "1:1", "4:5"]')
        resources = defs.resources
        plan = current_plan(resources["briefs"].load(CAMPAIGN), resources["storage"], resources["image_model"], video)
        assert {name for name in plan.outputs if name not in ("report", "storyboard_pdf", "deliverables")} == {
            n for n in outputs_of(resources["briefs"].load(CAMPAIGN).brief) if n.startswith("placements/4x5/")}
        edit(brief, '["9:16", "1:1", "4:5"]', '["9:16"]')
        # its rows of 1:1 go (the PDF prints the whole brief); every file stays
        assert run_tick(defs, instance) == {"report", "storyboard_pdf", "deliverables"}
        assert {name for name, data in outputs(root).items() if data != after[name]} == {"report.csv", "deliverables/report.csv"}


def choose(shapes: list[str]) -> dict:
    """What a launchpad sends to make only these placements (docs/placements.md)."""
    return {"resources": {"placement_choice": {"config": {"placements": shapes}}}}


def test_the_placements_job_makes_the_one_placement_its_run_names(tmp_path, instance):
    data = tmp_path / "data"
    (data / "briefs").mkdir(parents=True)
    one_scene = BRIEF.split("  - reference: A rocky ridge")[0]
    (data / "briefs" / f"{CAMPAIGN}.yaml").write_text(one_scene)
    defs = definitions_for(data, max_scenes=1)
    instance.add_dynamic_partitions("campaigns", [CAMPAIGN])
    masters = [dg.AssetKey([chain, "scene_1"]) for chain in ("reference", "start", "end")]
    assert defs.resolve_job_def("campaign").execute_in_process(
        partition_key=CAMPAIGN, instance=instance, asset_selection=masters).success
    job = defs.resolve_job_def(PLACEMENTS_JOB)
    result = job.execute_in_process(partition_key=CAMPAIGN, instance=instance,
                                    run_config=choose(["1:1"]))
    assert result.success
    root = data / "campaigns" / CAMPAIGN / "placements"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.*") if p.suffix != ".json") == [
        "1x1/ad.mp4", "1x1/clip/scene_1.mp4", "1x1/end/scene_1.png", "1x1/start/scene_1.png", "1x1/storyboard.png"]
    assert probe((root / "1x1/clip/scene_1.mp4").read_bytes()).width == 640  # the preview makes 1:1 itself
    failed = job.execute_in_process(partition_key=CAMPAIGN, instance=instance, raise_on_error=False,
                                    run_config=choose(["4:5"]))
    messages = [e.step_failure_data.error.message for e in failed.all_events if e.is_step_failure]
    assert messages and "placements 4:5 are not in the brief (its placements: 9:16, 1:1)" in messages[0]


def test_the_estimate_prices_placement_frames_as_image_calls_and_veo_clips_as_video_crops_free():
    loaded = brief_of(BRIEF)
    makers = {"image_maker": IMAGE, "video_maker": VEO}
    stored = Stored(records={}, calls=[])
    plan = plan_campaign(loaded, stored, **makers)
    priced = estimate_plan(plan, loaded, stored, **makers, cached=lambda key: None).outputs
    for k in range(1, 4):
        for shape in ("9x16", "1x1"):  # one image call per placement frame, priced like its master frame
            frame = priced[f"placements/{shape}/start/scene_{k}"]
            assert frame.calls == 1 and frame.usd > 0 and frame.model == IMAGE.model and frame.basis == "nominal"
        clip, made = priced[f"placements/9x16/clip/scene_{k}"], priced[f"clip/scene_{k}"]
        assert (clip.usd, clip.calls, clip.basis) == (made.usd, 1, made.basis) and clip.usd > 0  # a Veo clip
        assert (priced[f"placements/1x1/clip/scene_{k}"].usd, priced[f"placements/1x1/clip/scene_{k}"].calls) == (0, 0)
    assert all(priced[f"placements/{s}/{n}"].usd == 0 for s in ("9x16", "1x1") for n in ("ad", "storyboard"))
    # the preview makes 1:1 itself: still $0 (offline), but a clip of its own rather than a crop
    offline = {"image_maker": IMAGE, "video_maker": Maker("preview", "preview-dissolve-v1")}
    priced = estimate_plan(plan_campaign(loaded, stored, **offline), loaded, stored, **offline,
                           cached=lambda key: None).outputs
    assert priced["placements/1x1/clip/scene_1"].basis == "offline"


def test_a_placement_ad_gets_the_masters_finish_at_its_size_and_a_cta_edit_remakes_it_for_0(tmp_path, instance):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE_BRIEFS / "refs", data / "briefs" / "refs")  # the brand's logo
    text = (SAMPLE_BRIEFS / "aurora-perfume.yaml").read_text()
    head = text[:text.index("  - id: woman")]  # the header and the bottle, scene 1's one subject
    scenes, brand = text.split("scenes:\n")[1].split("brand:\n")
    brief = data / "briefs" / "aurora-perfume.yaml"  # its first, captioned scene, made 16:9 with a 9:16 placement
    brief.write_text(head.replace('aspect_ratio: "9:16"', 'aspect_ratio: "16:9"\nplacements: ["9:16"]') + "scenes:\n"
                     + scenes.split("  - subjects: [woman, bottle]")[0] + "    duration_s: 2\n"  # short: a quick test
                     + "brand:\n" + brand + "  end_card_s: 1\n")
    root = data / "campaigns" / "aurora-perfume"
    defs = definitions_for(data, max_scenes=1)
    run_tick(defs, instance)

    ad = root / "placements/9x16/ad.mp4"
    made = json.loads(ad.with_suffix(".json").read_text())
    with read_frames(ad.read_bytes()) as (_, frames):
        last = list(frames)[-1].astype(int)
    size = (made["width"], made["height"])
    assert size[1] > size[0] and made["finish"]["end_card_s"] > 0
    resources = defs.resources
    card = resources["briefs"].load("aurora-perfume").brief.brand
    logo = (brief.parent / card.logo).read_bytes()
    shown, other = (render_end_card(EndCard(cta, card.url, card.legal, tuple(card.colors), logo), size,
                                    safe_area("9:16")).astype(int) for cta in (card.cta, "Shop now"))
    cta = np.abs(shown - other).sum(axis=2) > 150  # where the two calls to action differ
    assert np.abs(last - shown).mean() < 4.0  # the end card at 9:16 size, within H.264's colour shifts
    assert np.abs(last - shown)[cta].mean() < 20 < 60 < np.abs(last - other)[cta].mean()
    srt = (root / "placements/9x16/ad.srt").read_text()
    assert "Every morning has a first light." in srt and made["srt"]["sha256"] == sha256(srt.encode())

    # a new call to action: both ads (and what follows them) for $0, with no image or clip call
    edit(brief, "cta: Discover Aurora", "cta: Find your first light")
    plan = current_plan(resources["briefs"].load("aurora-perfume"), resources["storage"], resources["image_model"],
                        resources["video_model"])
    assert {"ad", "placements/9x16/ad"} <= set(plan.outputs) and plan.estimate.usd == 0.0
    assert not any("scene_" in name for name in plan.outputs)
    calls = len(resources["storage"].ledger.calls("aurora-perfume"))
    remade = run_tick(defs, instance)
    assert "placements/ad" in remade and not any("scene_" in name for name in remade)
    assert len(resources["storage"].ledger.calls("aurora-perfume")) == calls
    assert json.loads(ad.with_suffix(".json").read_text())["request_sha256"] != made["request_sha256"]
