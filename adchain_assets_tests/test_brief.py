"""A brief is strict: every problem is reported with its file, its field path and what is wrong."""

import io
from pathlib import Path

import pytest
from PIL import Image

from adchain_assets.brief.model import BriefError, load_brief
from adchain_assets.cli.main import main

from .helpers import SAMPLE_BRIEFS

VALID = """\
title: Test
aspect_ratio: "9:16"
subjects:
  - id: bottle
    kind: product
    description: Faceted crystal bottle, rose-gold cap
  - id: woman
    kind: character
    description: Woman, 32, chestnut hair, emerald eyes
scenes:
  - subjects: [bottle]
    reference: bottle on a vanity
    start: close-up
    end: light fills the glass
  - subjects: [woman, bottle]
    reference: she holds it
    start: she lifts it
    end: she smiles
"""


def write(folder: Path, text: str, name: str = "spring-launch") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def problems(path: Path, max_scenes: int = 8) -> list[str]:
    with pytest.raises(BriefError) as raised:
        load_brief(path, max_scenes=max_scenes)
    return [str(problem) for problem in raised.value.problems]


@pytest.mark.parametrize("name", ["aurora-perfume", "muse-portrait"])
def test_sample_briefs_are_valid(name):
    loaded = load_brief(SAMPLE_BRIEFS / f"{name}.yaml", max_scenes=8)
    assert loaded.campaign == name
    assert loaded.brief.scenes


def test_aurora_is_the_seed_scenario():
    brief = load_brief(SAMPLE_BRIEFS / "aurora-perfume.yaml", max_scenes=8).brief
    assert [scene.subjects for scene in brief.scenes] == [["bottle"], ["woman", "bottle"], ["woman", "bottle"], ["woman", "bottle"]]


def test_valid_brief_defaults(tmp_path):
    brief = load_brief(write(tmp_path, VALID), max_scenes=8).brief
    assert brief.reference_mode == "chain"
    assert brief.scenes[0].continuity == ""


@pytest.mark.parametrize(
    "change, field, reason",
    [
        (("aspect_ratio: \"9:16\"", "aspect_ratio: \"7:5\""), "aspect_ratio", "'7:5' is not supported"),
        (("aspect_ratio: \"9:16\"", "aspect_ratio: 16:9"), "aspect_ratio", "quoted string"),
        (("title: Test", "title: Test\ncolour: red"), "colour", "unknown key"),
        (("    end: she smiles", "    end: she smiles\n    ending: typo"), "scenes[1].ending", "unknown key"),
        (("subjects: [woman, bottle]", "subjects: [man, bottle]"), "scenes[1].subjects[0]", "'man' is not defined"),
        (("subjects: [bottle]", "subjects: bottle"), "scenes[0].subjects", "valid list"),
        (("kind: product", "kind: gadget"), "subjects[0].kind", "'product' or 'character'"),
        (("    start: close-up\n", ""), "scenes[0].start", "is required"),
        (("reference: bottle on a vanity", "reference: '   '"), "scenes[0].reference", "must not be blank"),
        (("title: Test", "title: Test\nreference_mode: both"), "reference_mode", "'chain', 'anchored' or 'sheets'"),
        (("title: Test", "title: 12"), "title", "valid string"),
        (("id: woman", "id: bottle"), "subjects[1].id", "defined twice"),
        (("id: woman", "id: Woman!"), "subjects[1].id", "should match pattern"),
    ],
)
def test_each_problem_names_file_field_and_reason(tmp_path, change, field, reason):
    old, new = change
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    found = problems(path)
    assert any(line.startswith(f"{path}: {field}: ") and reason in line for line in found), found


def test_prompt_text_beyond_the_limit_is_refused(tmp_path):
    path = write(tmp_path, VALID.replace("start: close-up", "start: " + "x" * 2001))
    assert any("scenes[0].start" in line and "at most 2000" in line for line in problems(path))


def test_too_many_scenes(tmp_path):
    path = write(tmp_path, VALID)
    assert problems(path, max_scenes=1) == [
        f"{path}: scenes: has 2 scenes; at most 1 (ADCHAIN_MAX_SCENES) are allowed"
    ]


def test_zero_scenes(tmp_path):
    path = write(tmp_path, VALID.split("scenes:")[0] + "scenes: []\n")
    assert any("scenes: " in line and "at least 1" in line for line in problems(path))


@pytest.mark.parametrize("name", ["Spring", "-launch", "spring_launch", "a" * 64])
def test_campaign_id_comes_from_the_file_name_and_must_match_the_pattern(tmp_path, name):
    path = write(tmp_path, VALID, name=name)
    assert any("must match [a-z0-9][a-z0-9-]{0,62}" in line for line in problems(path))


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "title: [unclosed\nscenes: 1\n")
    [line] = problems(path)
    assert line.startswith(f"{path}: line ") and "not valid YAML" in line


@pytest.mark.parametrize(
    "reference, reason",
    [
        ("../outside.png", "leaves the brief's folder"),
        ("/etc/hostname", "is absolute"),
        ("refs/missing.png", "does not exist"),
        ("refs/link.png", "leaves the brief's folder"),
    ],
)
def test_reference_image_must_stay_inside_the_brief_folder(tmp_path, reference, reason):
    briefs = tmp_path / "briefs"
    (briefs / "refs").mkdir(parents=True)
    (tmp_path / "outside.png").write_bytes(b"x")
    (briefs / "refs" / "link.png").symlink_to(tmp_path / "outside.png")
    path = write(briefs, f"reference_image: {reference}\n" + VALID)
    assert any(line.startswith(f"{path}: reference_image: ") and reason in line for line in problems(path))


def test_validate_command_exit_codes_and_messages(tmp_path, capsys):
    good = write(tmp_path, VALID, name="good")
    bad = write(tmp_path, VALID.replace("subjects: [woman, bottle]", "subjects: [woman, perfume]"), name="bad")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: scenes[1].subjects[1]: subject 'perfume' is not defined" in err
    assert str(good) not in err


def _image_file(folder: Path, name: str, kind: str) -> None:
    path = folder / name
    if kind == "not an image":
        path.write_text("hello, I am a text file")
    elif kind == "truncated":
        buffer = io.BytesIO()
        Image.effect_noise((256, 256), 60).convert("RGB").save(buffer, "JPEG")
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "bomb":
        Image.new("1", (9000, 9000)).save(path, "PNG")  # 81 megapixels in a few kilobytes
    else:
        Image.new("RGB", (64, 64), "red").save(path, "PNG")


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("not an image", "is not an image Pillow can read"),
        ("truncated", "is damaged or truncated"),
        ("bomb", "is 9000x9000 pixels; at most 40 megapixels"),
    ],
)
def test_a_bad_reference_image_is_refused_with_its_reason(tmp_path, kind, reason):
    (tmp_path / "refs").mkdir()
    _image_file(tmp_path / "refs", "photo.png", kind)
    path = write(tmp_path, "reference_image: refs/photo.png\n" + VALID)
    assert any(line.startswith(f"{path}: reference_image: 'refs/photo.png' {reason}") for line in problems(path)), problems(path)


def test_a_bad_subject_photo_is_refused_too(tmp_path):
    (tmp_path / "refs").mkdir()
    _image_file(tmp_path / "refs", "face.png", "not an image")
    path = write(tmp_path, VALID.replace("description: Woman, 32", "photo: refs/face.png\n    description: Woman, 32"))
    assert any(line.startswith(f"{path}: subjects[1].photo: 'refs/face.png' is not an image") for line in problems(path))


def test_a_good_reference_image_passes(tmp_path):
    (tmp_path / "refs").mkdir()
    _image_file(tmp_path / "refs", "photo.png", "good")
    assert load_brief(write(tmp_path, "reference_image: refs/photo.png\n" + VALID), max_scenes=8).brief.reference_image


@pytest.mark.parametrize("campaign", ["../secret", "/etc/passwd", "a/../../b", ""])
def test_campaign_ids_that_try_to_leave_their_folder_are_refused(tmp_path, campaign):
    from adchain_assets.defs.resources import CampaignBriefs

    with pytest.raises(BriefError, match="must match"):
        CampaignBriefs(data_dir=str(tmp_path)).load(campaign)


def test_every_problem_of_a_file_in_one_pass(tmp_path):
    """An unknown key used to hide an undefined subject (pydantic skips the cross-field validator when a field
    fails): a user fixed a file one error at a time."""
    text = (
        VALID.replace("title: Test", "title: Test\ncolour: red")
        .replace("subjects: [woman, bottle]", "subjects: [man, bottle, bottle]")
        .replace("id: woman", "id: bottle")
        .replace("kind: product", "kind: gadget")
        + "reference_image: refs/missing.png\n"
    )
    path = write(tmp_path, text)
    found = problems(path, max_scenes=1)
    expected = [
        ("colour", "unknown key"),
        ("subjects[0].kind", "'product' or 'character'"),
        ("subjects[1].id", "defined twice"),
        ("scenes[1].subjects[0]", "'man' is not defined"),
        ("scenes[1].subjects", "named twice"),
        ("scenes", "at most 1"),
        ("reference_image", "does not exist"),
    ]
    for field, reason in expected:
        assert any(line.startswith(f"{path}: {field}: ") and reason in line for line in found), (field, found)
    assert len(found) == len(expected), found


def test_a_valid_brief_still_reports_cross_references_once(tmp_path):
    path = write(tmp_path, VALID.replace("subjects: [woman, bottle]", "subjects: [man, bottle]"))
    assert problems(path) == [
        f"{path}: scenes[1].subjects[0]: subject 'man' is not defined under subjects (defined: bottle, woman)"
    ]
