"""The specificity lint: each case it warns about, the file/field/fix in every warning, and `validate --strict`."""

from pathlib import Path

import pytest

from adchain_assets.brief.lint import MIN_DESCRIPTION_WORDS, lint_brief, lint_messages, missing_details
from adchain_assets.brief.model import load_brief
from adchain_assets.cli.main import main

from .helpers import SAMPLE_BRIEFS

WOMAN = (
    "Woman, 32 years old, 5'6\", medium build, shoulder-length wavy chestnut brown hair, emerald green eyes, "
    "light olive skin, small beauty mark near her left eye"
)
BOTTLE = (
    'Faceted crystal perfume bottle, 100 ml, rectangular with bevelled edges, polished rose-gold cap, '
    'pale pink liquid, "AURORA" engraved in thin capitals on the front'
)


def brief_text(woman: str = WOMAN, bottle: str = BOTTLE, reference: str = "The woman holding the bottle by a window",
               start: str = "She lifts the bottle toward the light", end: str = "She smiles") -> str:
    quote = lambda text: "'" + text.replace("'", "''") + "'"  # noqa: E731
    return f"""\
title: Lint
subjects:
  - id: woman
    kind: character
    description: {quote(woman)}
  - id: bottle
    kind: product
    description: {quote(bottle)}
scenes:
  - subjects: [woman, bottle]
    reference: {quote(reference)}
    start: {quote(start)}
    end: {quote(end)}
"""


def lint(tmp_path: Path, **parts) -> list[str]:
    path = tmp_path / "lint-case.yaml"
    path.write_text(brief_text(**parts))
    return lint_messages(load_brief(path, max_scenes=8))


def test_a_specific_brief_has_no_warnings(tmp_path):
    assert lint(tmp_path) == []


@pytest.mark.parametrize("name", ["aurora-perfume", "muse-portrait"])
def test_the_sample_briefs_pass_the_lint(name):
    assert lint_messages(load_brief(SAMPLE_BRIEFS / f"{name}.yaml", max_scenes=8)) == []


def test_the_seeds_generic_woman(tmp_path):
    lines = lint(tmp_path, woman="woman in her 30s wearing ivory blouse")
    path = tmp_path / "lint-case.yaml"
    assert len(lines) == 2, lines
    missing, short = lines
    assert missing.startswith(f"{path}: subjects[0].description: character 'woman' lacks hair (colour and style),"
                              " an eye colour and a distinguishing mark")
    assert "an age" not in missing  # "in her 30s" is an age
    assert 'for example: woman in her 30s wearing ivory blouse, shoulder-length wavy chestnut brown hair,' in missing
    assert short.startswith(f"{path}: subjects[0].description: character 'woman' is described in 7 words;"
                            f" at least {MIN_DESCRIPTION_WORDS}")
    assert "for example: Woman, 32 years old" in short


@pytest.mark.parametrize(
    "description, missing",
    [
        ("Woman, medium build, shoulder-length wavy chestnut brown hair, emerald green eyes, small beauty mark near her left eye", "an age"),
        ("Woman, 32 years old, medium build, light olive skin, emerald green eyes, small beauty mark near her left eye", "hair"),
        ("Woman, 32 years old, medium build, long wavy hair, emerald green eyes, small beauty mark near her left eye", "hair"),
        ("Woman, 32 years old, medium build, chestnut brown hair, light olive skin, small beauty mark near her left eye", "an eye colour"),
        ("Woman, 32 years old, medium build, chestnut brown hair, emerald green eyes, light olive skin, wearing a linen dress", "a distinguishing mark"),
    ],
)
def test_a_character_without_each_detail(tmp_path, description, missing):
    [line] = lint(tmp_path, woman=description)
    assert line.startswith(f"{tmp_path / 'lint-case.yaml'}: subjects[0].description: character 'woman' lacks {missing}")
    assert "for example: " in line


@pytest.mark.parametrize(
    "description, accepted",
    [
        ("Man, aged 45, bald, grey stubble, dark brown eyes, scar through his right eyebrow", "bald needs no colour"),
        ("Man in his late forties, salt-and-pepper hair cut short, blue-grey eyes, round tortoiseshell glasses", "decade"),
        ("Girl, 9, two blonde braids, hazel eyes, freckles across her nose, gap between her front teeth", "bare number"),
        ("Golden retriever, 3 years old, thick golden fur, warm brown eyes, a white star-shaped patch on his chest", "an animal"),
    ],
)
def test_other_ways_to_be_specific(description, accepted):
    assert missing_details(description, "character") == [], accepted


@pytest.mark.parametrize(
    "description, missing",
    [
        ('Crystal perfume bottle, 100 ml, polished rose-gold cap, pale pink liquid, "AURORA" engraved on the front', "a shape"),
        ('Rectangular perfume bottle with bevelled edges, 100 ml, pale pink liquid, "AURORA" printed on the front', "a material"),
        ('Rectangular faceted crystal perfume bottle with bevelled edges, 100 ml, "AURORA" engraved on the front', "a colour"),
        ("Rectangular faceted crystal perfume bottle with bevelled edges, 100 ml, rose-gold cap, pale pink liquid", "a label or marking"),
    ],
)
def test_a_product_without_each_detail(tmp_path, description, missing):
    [line] = lint(tmp_path, bottle=description)
    assert line.startswith(f"{tmp_path / 'lint-case.yaml'}: subjects[1].description: product 'bottle' lacks {missing}")
    assert "for example: " in line


def test_a_description_too_short_to_pin_an_identity(tmp_path):
    # every detail is there, in fewer words than an identity needs
    lines = lint(tmp_path, bottle='Faceted pink glass bottle, "AURORA" label')
    assert len(lines) == 1
    assert "subjects[1].description: product 'bottle' is described in 6 words" in lines[0]


@pytest.mark.parametrize(
    "part, text, says",
    [
        ("reference", "The woman tosses her blonde hair by the window, the bottle in her hand", "blonde hair"),
        ("start", "Close-up of her bright blue eyes above the bottle", "blue eye"),
        ("end", "She sets down a green glass bottle on the sill", "green bottle"),
        ("start", "Her blonde curls catch the light", "blonde hair"),
        ("end", "A platinum-haired woman holds the bottle", "platinum hair"),
    ],
)
def test_a_scene_text_that_contradicts_the_description(tmp_path, part, text, says):
    [line] = lint(tmp_path, **{part: text})
    assert line.startswith(f"{tmp_path / 'lint-case.yaml'}: scenes[0].{part}: says ")
    assert f"{says.split()[0]} {says.split()[1]}" in line.split(" but ")[0]
    assert "for example: " in line
    if "hair" in says:
        assert '"shoulder-length wavy chestnut brown hair"' in line


@pytest.mark.parametrize(
    "text",
    [
        "Sunlight on her chestnut hair, the bottle's rose-gold cap glinting",
        "Her dark brown hair falls forward as she lifts the pink bottle",
        "Her green eyes close; the white marble vanity behind the bottle",
    ],
)
def test_a_scene_text_that_agrees_is_not_a_contradiction(tmp_path, text):
    assert lint(tmp_path, reference=text) == []


def test_no_contradiction_for_a_subject_the_scene_does_not_name(tmp_path):
    text = brief_text(reference="A blonde-haired stranger walks past").replace("subjects: [woman, bottle]", "subjects: [bottle]")
    path = tmp_path / "lint-case.yaml"
    path.write_text(text)
    assert lint_brief(load_brief(path, max_scenes=8).brief, file=str(path)) == []


def test_validate_prints_warnings_and_strict_makes_them_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADCHAIN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    path = tmp_path / "lint-case.yaml"
    path.write_text(brief_text(woman="woman in her 30s wearing ivory blouse"))
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: ok" in out and err == ""
    assert out.count(f"warning: {path}: subjects[0].description: ") == 2
    assert main(["validate", "--strict", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "ok" not in out and err.count(f"{path}: subjects[0].description: ") == 2
    good = tmp_path / "good-case.yaml"
    good.write_text(brief_text())
    assert main(["validate", "--strict", str(good)]) == 0
