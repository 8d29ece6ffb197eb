"""The specificity lint: each case it warns about, the file/field/fix in every warning, and `validate --strict`."""

from pathlib import Path

import pytest
import yaml

from adchain_assets.brief.lint import (
    CHARACTER_EXAMPLE,
    MIN_DESCRIPTION_WORDS,
    PRODUCT_EXAMPLE,
    LintWarning,
    lint_brief,
    lint_messages,
)
from adchain_assets.brief.model import load_brief, parse_brief
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


@pytest.mark.parametrize("name", ["aurora-perfume", "muse-portrait", "lumen-dive"])
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
    assert missing.endswith("; add what is true of this character: hair (its colour, length and style, e.g. 'short"
                            " curly black hair'; or 'bald'); an eye colour (e.g. 'hazel eyes', 'blue-grey eyes');"
                            " a distinguishing mark (one the person has: a beauty mark, mole, scar, freckles, tattoo,"
                            " glasses...)")
    assert short.startswith(f"{path}: subjects[0].description: character 'woman' is described in 7 words;"
                            f" at least {MIN_DESCRIPTION_WORDS}")
    assert "; write more: a character's description names the age, height and build," in short


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
    assert f"; add what is true of this character: {missing}" in line


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
    assert one_subject(description, "character") == [], accepted


@pytest.mark.parametrize(
    "description, missing",
    [
        ('Crystal perfume bottle, polished rose-gold cap, pale pink liquid, "AURORA" engraved on the front', "a shape or size"),
        ('Rectangular perfume bottle with bevelled edges, 100 ml, pale pink liquid, "AURORA" printed on the front', "a material"),
        ('Rectangular faceted crystal perfume bottle with bevelled edges, 100 ml, "AURORA" engraved on the front', "a colour"),
        ("Rectangular faceted crystal perfume bottle with bevelled edges, 100 ml, rose-gold cap, pale pink liquid", "a label or marking"),
    ],
)
def test_a_product_without_each_detail(tmp_path, description, missing):
    [line] = lint(tmp_path, bottle=description)
    assert line.startswith(f"{tmp_path / 'lint-case.yaml'}: subjects[1].description: product 'bottle' lacks {missing}:")
    assert f"; add what is true of this product: {missing} (" in line


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
    assert "; leave the colour out" in line
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


# --- specific descriptions pass; fixes name what to add and never write into the description ---------------------

WATCH = ("Titanium dive watch, 42 mm case, matte slate-blue dial, orange seconds hand, engraved 'LUMEN 300' on the"
         " bezel, black rubber strap")


def one_subject(description: str, kind: str) -> list[LintWarning]:
    """The lint's warnings for a brief of one subject with this description (no file: the brief is parsed from text)."""
    subject = {"id": "hero", "kind": kind, "description": description}
    scene = {"subjects": ["hero"], "reference": "The hero by a window", "start": "Close-up", "end": "Wide shot"}
    text = yaml.safe_dump({"title": "One", "subjects": [subject], "scenes": [scene]})
    return lint_brief(parse_brief(text, file="one.yaml", brief_dir=None, max_scenes=8), file="one.yaml")


@pytest.mark.parametrize(
    "description",
    [
        WATCH,
        "Perfume bottle, 50 ml, heavy clear glass, black lacquered cap, amber liquid, 'NOIR 9' in white serif"
        " capitals on the front",
        "Eau de parfum flacon, 75 ml, frosted glass with a gold atomiser, pale blush liquid, ‘SOLÈNE’ across the base",
        "Running sneaker, EU size 42, white knit mesh upper, neon green stripe along the side, gum rubber sole,"
        " 'AIRLINE' on the heel tab",
        "Coffee mug, 12 oz, glossy white porcelain, thin cobalt-blue band around the rim, 'Dad's Mug' in black on"
        " the side",
        "Notebook, A5, navy linen hardcover, cream dotted pages, 'FIELD NOTES' debossed on the cover",
        "Desk lamp, 45 cm tall, brushed brass arm, matte black shade, 'LUMA' stamped on the base",
    ],
)
def test_specific_products_pass(description):
    assert one_subject(description, "product") == []


@pytest.mark.parametrize(
    "description",
    [
        "Man, 58 years old, 6'1\", lean build, close-cropped silver hair, pale grey eyes, weathered tan skin, thin"
        " white scar across his chin, navy wool peacoat",
        "Woman in her early 40s, 5'8\", auburn bob with a straight fringe, hazel eyes behind thin gold-rimmed"
        " glasses, light olive skin",
        "Woman, 35, shoulder-length black hair, eyes a deep brown, small mole above her upper lip, red wool coat",
        "Woman, 29 years old, platinum blonde pixie cut, ice-blue eyes, a tiny scar through her left eyebrow",
        "Man, 80 years old, white hair combed back, watery blue eyes, deep laugh lines, a hearing aid in his left"
        " ear, brown tweed jacket",
    ],
)
def test_specific_people_pass(description):
    assert one_subject(description, "character") == []


@pytest.mark.parametrize(
    "description, kind, missing",
    [
        ("woman in her 30s wearing ivory blouse", "character", "hair (colour and style), an eye colour and a"
                                                               " distinguishing mark"),
        ("Woman, 35, shoulder-length black hair, eyes behind gold-rimmed glasses, small mole above her upper lip",
         "character", "an eye colour"),
        ("Woman, 32 years old, medium build, a neat bun, emerald green eyes, small beauty mark near her left eye",
         "character", "hair (colour and style)"),
        ("Nice watch with a strap, looks expensive and premium, made for men who like quality", "product",
         "a shape or size, a material, a colour and a label or marking"),
        ("Perfume bottle, 100 ml, heavy and elegant, sold in fine stores everywhere this season", "product",
         "a material, a colour and a label or marking"),
        # a number in the name on it is not its size
        ('Perfume bottle, heavy clear glass, black cap, amber liquid, "No 5" in white capitals on the front',
         "product", "a shape or size"),
        # an apostrophe is not a quote: nothing here is the text on the watch
        ("Men's titanium watch, 40 mm, black dial, the wearer's initials nowhere, women's version also sold",
         "product", "a label or marking"),
    ],
)
def test_vague_descriptions_still_warn(description, kind, missing):
    lacks = [w for w in one_subject(description, kind) if " lacks " in w.problem]
    assert [w.problem.split(" lacks ")[1].split(":")[0] for w in lacks] == [missing]


@pytest.mark.parametrize("size", ["42 mm", "100 ml", "30 cm tall", "5'6\"", "A5", "1.5 L", "size 10", "20 x 30 cm",
                                  '13" tall'])
def test_a_size_is_enough_form_for_a_product(size):
    description = (f"Leather-bound travel journal, {size}, soft tan leather cover, gilded page edges, 'ATLAS' embossed"
                   " on the front")
    assert one_subject(description, "product") == []
    without = description.replace(f"{size}, ", "")
    [warning] = one_subject(without, "product")
    assert "lacks a shape or size:" in warning.problem


def test_a_quoted_label_in_single_quotes_counts():
    assert one_subject(WATCH.replace("engraved ", ""), "product") == []


DETAILS = {"character": ["an age", "hair", "an eye colour", "a distinguishing mark"],
           "product": ["a shape or size", "a material", "a colour", "a label or marking"]}


@pytest.mark.parametrize(
    "description, kind",
    [
        (WATCH.replace("42 mm case, ", ""), "product"),  # the watch, without its size: it is round
        ("Rectangular faceted crystal perfume bottle with bevelled edges, 100 ml, rose-gold cap, pale pink liquid",
         "product"),
        ("woman in her 30s wearing ivory blouse", "character"),
        ("Woman, medium build, shoulder-length wavy chestnut brown hair, light olive skin", "character"),
    ],
)
def test_a_fix_names_what_to_add_and_writes_nothing_into_the_description(description, kind):
    warnings = one_subject(description, kind)
    [lacks] = [w for w in warnings if " lacks " in w.problem]
    assert lacks.fix.startswith(f"add what is true of this {kind}: ")
    missing = [d for d in DETAILS[kind] if d in lacks.problem]
    assert missing and all(f"; {d} (" in "; " + lacks.fix.split(": ", 1)[1] for d in missing), lacks.fix
    for warning in warnings:
        assert description.rstrip(".") not in warning.fix  # never the user's text with made-up details appended
        assert "rectangular with bevelled edges" not in warning.fix and "chestnut brown" not in warning.fix
        assert warning.fix not in (CHARACTER_EXAMPLE, PRODUCT_EXAMPLE)
        assert str(warning) == f"one.yaml: {warning.field}: {warning.problem}; {warning.fix}"


def test_too_few_words_says_what_a_full_description_names():
    [short] = one_subject('Faceted pink glass bottle, "AURORA" label', "product")
    assert "is described in 6 words" in short.problem
    assert short.fix.startswith("write more: a product's description names its shape or size, material,")
    [_, short] = one_subject("woman in her 30s wearing ivory blouse", "character")
    assert short.fix.startswith("write more: a character's description names the age, height and build,")
