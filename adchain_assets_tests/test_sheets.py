"""Subject sheets (reference_mode: sheets): a sheet per subject, made first and shown to every image of its subject,
in the order the prompt names; exact lineage; photos used as is; the models' reference limits; the sheet's check."""

import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from adchain_assets.brief.model import load_brief
from adchain_assets.cli.main import main
from adchain_assets.defs.resources import current_plan
from adchain_assets.defs.sheets import sheets_new_take_config
from adchain_assets.plan.references import ReferenceLimits, Slot, select_sheets
from adchain_assets.plan.requests import Maker, reference_warnings

from .gemini_server import image_reply
from .helpers import (
    SAMPLE_BRIEFS, adchain, definitions_for, edit, execute, selected, short_clips, small_images, snapshot, tick,
)

CAMPAIGN = "aurora-perfume"  # the bottle alone in scene 1, the woman with it in scenes 2 to 4
FACES = Path(__file__).parent / "testdata" / "faces"
CHARACTER_SHEET = "Character reference sheet"
PACKSHOT = "Product packshot"


def pixels(png: bytes) -> str:
    """The digest of an image's decoded pixels: what a request showed, whatever its encoding."""
    with Image.open(io.BytesIO(png)) as image:
        return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def stored(data_dir, name) -> tuple[bytes, dict]:
    root = data_dir / "campaigns" / CAMPAIGN
    return (root / f"{name}.png").read_bytes(), json.loads((root / f"{name}.json").read_text())


@pytest.fixture
def sheets_brief(data_dir):
    (data_dir / "briefs" / "muse-portrait.yaml").unlink()
    path = data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    edit(path, "reference_mode: chain", "reference_mode: sheets")
    short_clips(path)
    return data_dir


def run_tick(defs, instance):
    result = tick(defs, instance)
    for request in result.run_requests:
        outcome = execute(defs, instance, request)
        assert outcome.success, [e.step_failure_data.error.message for e in outcome.all_events if e.is_step_failure]
    return result


def sheet_kind(request) -> str:
    """Which kind of sheet a request asks for ("" for an image of a scene)."""
    return next((kind for kind in (CHARACTER_SHEET, PACKSHOT) if request.prompt_text.startswith(kind)), "")


def scene_of(request) -> int:
    """The scene an image request is for, from its prompt's first sentence (0 for a sheet)."""
    found = re.search(r"scene (\d+) of an advertising campaign", request.prompt_text.split(":")[0])
    return int(found.group(1)) if found else 0


def image_requests(server, prompt_start: str):
    return [r for r in server.requests if r.prompt_text.startswith(prompt_start)]


def test_the_sheets_come_first_and_every_image_is_shown_the_sheets_of_its_subjects(sheets_brief, instance, fake_gemini):
    small_images(fake_gemini)  # what is shown is compared pixel for pixel; the checks of small images are quick
    defs = definitions_for(sheets_brief, image_backend="gemini", max_scenes=4)
    first = run_tick(defs, instance)
    assert "subjects" in selected(first)[CAMPAIGN]
    sheets = fake_gemini.requests[:2]  # one call per subject, before any image
    assert sorted(sheet_kind(r) for r in sheets) == [CHARACTER_SHEET, PACKSHOT]
    assert all(r.images == [] for r in sheets)
    assert len(fake_gemini.requests) == 2 + 12
    woman, _ = stored(sheets_brief, "subjects/woman")
    bottle, _ = stored(sheets_brief, "subjects/bottle")
    for request in fake_gemini.requests[2:]:
        shown = [pixels(image) for image in request.images]
        named = request.prompt_text.split("Reference images, in the order attached. ")[-1]
        is_scene_1 = scene_of(request) == 1
        # the prompt names each image by its position; the pixels at that position are that subject's sheet
        if is_scene_1:
            assert pixels(woman) not in shown and "the woman" not in named.split(". The")[0]
        else:
            assert pixels(woman) in shown, (request.prompt_text[:90], len(shown))
            position = shown.index(pixels(woman)) + 1
            assert f"Image {position}: the woman (character reference sheet)." in named
        assert pixels(bottle) in shown, (request.prompt_text[:90], len(shown))
        position = shown.index(pixels(bottle)) + 1
        assert f"Image {position}: the bottle (product packshot)." in named
        if shown[0] not in (pixels(woman), pixels(bottle)):
            assert "Image 1: the " in named and "(the previous shot)" in named.split("Image 2")[0]
    _, record = stored(sheets_brief, "start/scene_2")
    assert [r.get("subject") for r in record["references"]] == [None, "woman", "bottle"]
    assert record["references"][1]["asset"] == "subjects"
    assert record["consistency"]["woman"]["anchor"] == "subjects/woman"  # scored against her sheet
    assert not tick(defs, instance).run_requests  # at rest

    # Editing the woman's description: her sheet and the images that show her; no bottle-only image
    before = len(fake_gemini.requests)
    edit(sheets_brief / "briefs" / f"{CAMPAIGN}.yaml", "emerald green eyes", "grey-green eyes")
    run_tick(defs, instance)
    called = fake_gemini.requests[before:]
    assert [sheet_kind(r) for r in called[:1]] == [CHARACTER_SHEET]
    assert not [r for r in called if scene_of(r) == 1]
    assert len(called) == 1 + 9  # her sheet, and the nine images of scenes 2 to 4


def test_a_subject_photo_is_its_sheet_with_no_call(sheets_brief, instance, fake_gemini):
    small_images(fake_gemini)
    brief = sheets_brief / "briefs" / f"{CAMPAIGN}.yaml"
    (sheets_brief / "briefs" / "refs").mkdir(exist_ok=True)
    (sheets_brief / "briefs" / "refs" / "woman.jpg").write_bytes((FACES / "leslie_1.jpg").read_bytes())
    text = brief.read_text()
    brief.write_text(text.replace("    kind: character\n", "    kind: character\n    photo: refs/woman.jpg\n", 1))
    defs = definitions_for(sheets_brief, image_backend="gemini", max_scenes=4)
    run_tick(defs, instance)
    assert [sheet_kind(r) for r in fake_gemini.requests].count(CHARACTER_SHEET) == 0
    sheet, record = stored(sheets_brief, "subjects/woman")
    assert record["backend"] == "user"
    with Image.open(FACES / "leslie_1.jpg") as photo:
        assert pixels(sheet) == hashlib.sha256(photo.convert("RGB").tobytes()).hexdigest()
    for request in image_requests(fake_gemini, "Reference image for scene 2 "):
        assert pixels(sheet) in [pixels(image) for image in request.images]


def test_a_model_limited_to_three_references_keeps_the_documented_priority(data_dir, tmp_path):
    previous = [Slot("start", 1)]
    scene = [("woman", "character"), ("man", "character"), ("bottle", "product")]
    chosen = select_sheets(previous, scene, ReferenceLimits(total=3, characters=3, objects=3))
    assert chosen.sheets == ("woman", "man") and chosen.previous_kept and chosen.dropped == ("subjects/bottle",)
    chosen = select_sheets([], scene, ReferenceLimits(total=3, characters=3, objects=3))  # scene 1's reference
    assert chosen.sheets == ("woman", "man", "bottle") and chosen.dropped == ()
    chosen = select_sheets(previous, scene, ReferenceLimits(total=3, characters=1, objects=3))
    assert chosen.sheets == ("woman", "bottle") and chosen.dropped == ("subjects/man",)

    path = data_dir / "briefs" / "duo.yaml"
    text = (data_dir / "briefs" / f"{CAMPAIGN}.yaml").read_text().replace("reference_mode: chain", "reference_mode: sheets")
    text = text.replace("subjects:\n", "subjects:\n  - id: man\n    kind: character\n    description: >-\n"
                        "      Man, 41 years old, short salt-and-pepper hair, brown eyes, a thin scar on his chin,"
                        " navy linen shirt\n", 1)
    text = text.replace("subjects: [woman, bottle]", "subjects: [woman, man, bottle]")
    path.write_text(text)
    loaded = load_brief(path, max_scenes=8)
    warnings = reference_warnings(loaded, Maker("gemini", "gemini-2.5-flash-image"))
    assert len(warnings) == 3 and all("left out: subjects/bottle" in w for w in warnings)
    assert "scenes[1]: gemini-2.5-flash-image takes at most 3 reference images" in warnings[0]
    assert reference_warnings(loaded, Maker("gemini", "gemini-3.1-flash-image")) == []


def test_the_requests_hold_three_images_when_the_model_takes_three(sheets_brief, instance, fake_gemini, monkeypatch):
    small_images(fake_gemini)
    brief = sheets_brief / "briefs" / f"{CAMPAIGN}.yaml"
    text = brief.read_text().replace("subjects:\n", "subjects:\n  - id: man\n    kind: character\n    description: >-\n"
                                     "      Man, 41 years old, short salt-and-pepper hair, brown eyes, a thin scar on his"
                                     " chin, navy linen shirt\n", 1)
    brief.write_text(text.replace("subjects: [woman, bottle]", "subjects: [woman, man, bottle]"))
    defs = definitions_for(sheets_brief, image_backend="gemini", image_model="gemini-2.5-flash-image", max_scenes=4)
    run_tick(defs, instance)
    man, _ = stored(sheets_brief, "subjects/man")
    woman, _ = stored(sheets_brief, "subjects/woman")
    for request in image_requests(fake_gemini, "First frame of the video clip of scene 3 "):
        assert len(request.images) == 3
        assert [pixels(image) for image in request.images[1:]] == [pixels(woman), pixels(man)]
        assert "the bottle does not appear" in request.prompt_text.lower() or "Image 4" not in request.prompt_text


def test_bad_input_is_refused_before_any_call(sheets_brief, monkeypatch, capsys):
    brief = sheets_brief / "briefs" / f"{CAMPAIGN}.yaml"
    monkeypatch.setenv("ADCHAIN_IMAGE_BACKEND", "gemini")
    monkeypatch.setenv("GEMINI_API_KEY", "unused")
    monkeypatch.setenv("ADCHAIN_IMAGE_MODEL", "gemini-2.5-flash-image-preview")  # no reference limits in the catalogue
    assert main(["validate", str(brief)]) == 2
    err = capsys.readouterr().err
    assert "reference_mode: sheets: image model gemini-2.5-flash-image-preview has no reference-image limits" in err
    monkeypatch.delenv("ADCHAIN_IMAGE_MODEL")
    (sheets_brief / "briefs" / "refs").mkdir(exist_ok=True)
    Image.new("RGB", (64, 64), (200, 180, 160)).save(sheets_brief / "briefs" / "refs" / "blank.png")
    text = brief.read_text()
    brief.write_text(text.replace("    kind: character\n", "    kind: character\n    photo: refs/blank.png\n", 1))
    assert main(["validate", str(brief)]) == 2
    err = capsys.readouterr().err
    assert "subjects[1].photo: 'refs/blank.png' shows no face the identity checks can find" in err


def two_views() -> bytes:
    """A character sheet as a model would draw it: the same person twice, side by side."""
    with Image.open(FACES / "leslie_1.jpg") as a, Image.open(FACES / "leslie_2.jpg") as b:
        height = 480
        a, b = (im.convert("RGB").resize((round(im.width * height / im.height), height)) for im in (a, b))
        sheet = Image.new("RGB", (a.width + b.width, height), "white")
        sheet.paste(a, (0, 0))
        sheet.paste(b, (a.width, 0))
        buffer = io.BytesIO()
        sheet.save(buffer, "PNG")
        return buffer.getvalue()


def test_the_sheet_check_counts_one_face_per_view_and_a_new_take_of_a_sheet_is_followed(sheets_brief, instance,
                                                                                      fake_gemini):
    sheet = two_views()
    packshot = fake_gemini.default_reply  # full size: the product's keypoints are counted
    small_images(fake_gemini)  # the scenes' pictures: their checks are not what this test is about
    small = fake_gemini.default_reply

    def answer(request):
        if request.prompt_text.startswith(CHARACTER_SHEET):
            return image_reply(sheet)
        return (packshot if request.prompt_text.startswith(PACKSHOT) else small)(request)

    fake_gemini.default_reply = answer
    defs = definitions_for(sheets_brief, image_backend="gemini", max_scenes=4)
    [request] = tick(defs, instance).run_requests
    result = execute(defs, instance, request)
    assert result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "sheet"]
    assert check.passed, check.metadata
    assert check.metadata["woman"].value["faces"] == 2
    assert check.metadata["bottle"].value["keypoints"] >= 50

    # one face where the sheet should show two: the check fails, naming why
    with Image.open(FACES / "leslie_1.jpg") as one:
        buffer = io.BytesIO()
        one.convert("RGB").save(buffer, "PNG")
    sheet = buffer.getvalue()
    result = defs.resolve_job_def("campaign").execute_in_process(
        partition_key=CAMPAIGN, instance=instance, raise_on_error=False,
        asset_selection=[dg.AssetKey("subjects")], run_config=sheets_new_take_config(["woman"]))
    assert result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "sheet"]
    assert not check.passed and "1 faces where the sheet should show 2" in check.metadata["woman"].value["reason"]
    _, record = stored(sheets_brief, "subjects/woman")
    assert record["take"] == 1
    resources = defs.resources
    plan = current_plan(resources["briefs"].load(CAMPAIGN), resources["storage"], resources["image_model"],
                        resources["video_model"])
    images = {name for name in plan.outputs if name.split("/")[0] in ("reference", "start", "end")}
    assert images == {f"{chain}/scene_{k}" for chain in ("reference", "start", "end") for k in (2, 3, 4)}
    assert not [name for name in plan.outputs if name.endswith("scene_1")]  # scene 1 shows only the bottle


@pytest.mark.subprocess
def test_regenerate_a_subject_as_a_user_does(cli_env, data_dir):
    """The sample sheets brief offline: a new take of the diver's sheet re-makes what shows her, not scene 1."""
    shutil.copy(SAMPLE_BRIEFS / "lumen-dive.yaml", data_dir / "briefs")
    assert adchain(cli_env, "materialize", "lumen-dive").returncode == 0
    root = data_dir / "campaigns" / "lumen-dive"
    before = snapshot(data_dir, "lumen-dive")
    watch = (root / "subjects" / "watch.png").read_bytes()
    done = adchain(cli_env, "regenerate", "lumen-dive", "--subject", "diver")
    assert done.returncode == 0, done.stderr
    assert json.loads((root / "subjects" / "diver.json").read_text())["take"] == 1
    assert (root / "subjects" / "watch.png").read_bytes() == watch
    after = snapshot(data_dir, "lumen-dive")
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {f"{chain}/scene_{k}.png" for chain in ("reference", "start", "end") for k in (2, 3)} | {
        f"placements/9x16/{chain}/scene_{k}.png" for chain in ("start", "end") for k in (2, 3)}  # its 9:16 placement
    plan = adchain(cli_env, "plan", "lumen-dive", "--json")
    assert json.loads(plan.stdout)["outdated"] == []

    nobody = adchain(cli_env, "regenerate", "lumen-dive", "--subject", "nobody")
    assert nobody.returncode == 2 and "--subject nobody: not a subject of the brief (watch, diver)" in nobody.stderr
    chain = adchain(cli_env, "regenerate", "aurora-perfume", "--subject", "woman")
    assert chain.returncode == 2 and "reference_mode is chain" in chain.stderr
    both = adchain(cli_env, "regenerate", "lumen-dive", "--subject", "diver", "--scene", "2")
    assert both.returncode == 2
