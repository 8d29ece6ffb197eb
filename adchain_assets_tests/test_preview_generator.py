"""The preview renderer: deterministic, the right size, and showing what a reviewer needs to see."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont
from PIL._util import DeferredError

from adchain_assets.brief.model import ASPECT_RATIOS
from adchain_assets.plan.prompts import ComposedPrompt, SubjectLine
from adchain_assets.plan.references import Slot
from adchain_assets.providers.images import preview
from adchain_assets.providers.images.base import ImageRequest, ReferenceImage
from adchain_assets.providers.images.preview import PreviewGenerator, canvas_size, colour_of, palette_colours

MAGENTA = (255, 0, 255)
CYAN = (0, 255, 255)
ORANGE = (255, 128, 0)
GOLD = (212, 175, 55)  # the table's gold, not CSS's yellow (255, 215, 0)
TEAL = (0, 128, 128)  # CSS teal

BOTTLE = SubjectLine("bottle", "product", "Faceted crystal perfume bottle with a polished rose-gold cap")
WOMAN = SubjectLine("woman", "character", "Woman, 32, shoulder-length wavy chestnut hair, ivory silk blouse")


def make_prompt(
    scene_text: str = "She lifts the bottle toward the window light",
    palette: str = "gold, teal",
    continuity: str = "Same bedroom as scene 1",
    subjects: tuple[SubjectLine, ...] = (WOMAN, BOTTLE),
) -> ComposedPrompt:
    look = (("style", "cinematic"), ("color palette", palette)) if palette else (("style", "cinematic"),)
    return ComposedPrompt(
        slot=Slot("start", 2),
        scene_text=scene_text,
        subjects=subjects,
        look=look,
        continuity=continuity,
        reference_note="",
    )


def solid_png(colour: tuple[int, int, int], size: tuple[int, int] = (256, 256)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def request(prompt: ComposedPrompt | None = None, references=(), aspect_ratio: str = "9:16") -> ImageRequest:
    return ImageRequest(prompt or make_prompt(), list(references), aspect_ratio)


def render(req: ImageRequest) -> Image.Image:
    image = Image.open(io.BytesIO(PreviewGenerator().generate(req).png))
    image.load()
    return image


def solid_blocks(image: Image.Image, colour: tuple[int, int, int], size: int = 10) -> np.ndarray:
    """(x, y) of every top-left corner of a size x size block of exactly ``colour``."""
    mask = np.all(np.asarray(image.convert("RGB")) == colour, axis=-1).astype(np.int32)
    integral = np.pad(mask.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
    sums = sums + integral[:-size, :-size]
    ys, xs = np.nonzero(sums == size * size)
    return np.stack([xs, ys], axis=1)


def test_generate_returns_a_free_rgb_png_with_backend_and_model():
    result = PreviewGenerator().generate(request())
    assert result.png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(result.png))
    assert image.format == "PNG" and image.mode == "RGB"
    assert (result.backend, result.model) == ("preview", "preview-storyboard-v1")
    assert result.cost_usd == 0.0 and result.usage == {}
    assert result.latency_s > 0


def test_same_request_gives_identical_bytes():
    req = request(references=[ReferenceImage("reference/scene_1", solid_png(MAGENTA))])
    assert PreviewGenerator().generate(req).png == PreviewGenerator().generate(req).png


@pytest.mark.subprocess
def test_bytes_do_not_depend_on_the_process_or_its_hash_seed():
    script = (
        "import hashlib, sys\n"
        "from adchain_assets_tests.test_preview_generator import request, make_prompt\n"
        "from adchain_assets.providers.images.preview import PreviewGenerator\n"
        "png = PreviewGenerator().generate(request(make_prompt(palette='gold, mystery colour, teal'))).png\n"
        "print(hashlib.sha256(png).hexdigest())\n"
    )
    png = PreviewGenerator().generate(request(make_prompt(palette="gold, mystery colour, teal"))).png
    root = Path(__file__).resolve().parents[1]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == hashlib.sha256(png).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"scene_text": "She sets the bottle down"},
        {"palette": "sage green, amber"},
        {"continuity": ""},
        {"subjects": (BOTTLE,)},
    ],
)
def test_a_different_prompt_gives_different_bytes(change):
    generate = PreviewGenerator().generate
    assert generate(request(make_prompt(**change))).png != generate(request()).png


def test_a_different_reference_gives_different_bytes():
    png = PreviewGenerator().generate
    magenta = png(request(references=[ReferenceImage("reference/scene_1", solid_png(MAGENTA))])).png
    cyan = png(request(references=[ReferenceImage("reference/scene_1", solid_png(CYAN))])).png
    relabelled = png(request(references=[ReferenceImage("start/scene_1", solid_png(MAGENTA))])).png
    assert len({magenta, cyan, relabelled}) == 3


@pytest.mark.parametrize("aspect_ratio", ASPECT_RATIOS)
def test_size_matches_the_aspect_ratio(aspect_ratio: str):
    width, height = render(request(aspect_ratio=aspect_ratio)).size
    w, h = (int(part) for part in aspect_ratio.split(":"))
    assert max(width, height) == 768
    assert width % 2 == 0 and height % 2 == 0
    assert (width, height) == canvas_size(aspect_ratio)
    if w >= h:
        assert abs(height - 768 * h / w) <= 1
    else:
        assert abs(width - 768 * w / h) <= 1


def test_unsupported_aspect_ratio_is_refused():
    with pytest.raises(ValueError, match="7:3"):
        PreviewGenerator().generate(request(aspect_ratio="7:3"))


@pytest.mark.parametrize("aspect_ratio", ["9:16", "1:1", "21:9"])
def test_the_reference_image_is_shown(aspect_ratio: str):
    references = [ReferenceImage("reference/scene_1", solid_png(MAGENTA))]
    image = render(request(references=references, aspect_ratio=aspect_ratio))
    assert len(solid_blocks(image, MAGENTA)) > 0


@pytest.mark.parametrize("aspect_ratio", ["9:16", "16:9"])
def test_references_are_shown_in_order_left_to_right(aspect_ratio: str):
    references = [
        ReferenceImage("reference/scene_1", solid_png(MAGENTA)),
        ReferenceImage("start/scene_1", solid_png(CYAN, (300, 500))),
        ReferenceImage("reference/scene_2", solid_png(ORANGE, (64, 48))),
    ]
    image = render(request(references=references, aspect_ratio=aspect_ratio))
    xs = []
    for colour in (MAGENTA, CYAN, ORANGE):
        blocks = solid_blocks(image, colour, size=8)
        assert len(blocks) > 0, colour
        xs.append(blocks[:, 0].mean())
    assert xs == sorted(xs)


def test_no_reference_leaves_no_reference_pixels():
    image = render(request())
    assert len(solid_blocks(image, MAGENTA)) == 0


def test_palette_swatches_appear_in_order():
    """Swatches, not just the background: in a portrait frame the bottom row can only be gold by a swatch,
    since the background's gold band is at the top (gold first, ivory last)."""
    image = render(request(make_prompt(palette="gold, teal, ivory"), aspect_ratio="9:16"))
    bottom_row = image.crop((0, image.height - 50, image.width, image.height))
    gold, teal = solid_blocks(bottom_row, GOLD, size=14), solid_blocks(bottom_row, TEAL, size=14)
    assert len(gold) > 0 and len(teal) > 0
    assert gold[:, 0].max() < teal[:, 0].min()


def test_palette_is_parsed_from_the_look_value():
    assert palette_colours("Warm gold, ivory and blush") == [
        ("warm gold", colour_of("warm gold")),
        ("ivory", colour_of("ivory")),
        ("blush", colour_of("blush")),
    ]
    assert palette_colours("") == []


def test_colour_words_map_to_known_colours():
    assert colour_of("gold") == GOLD
    assert colour_of("teal") == TEAL
    assert colour_of("light blue") == (173, 216, 230)  # CSS lightblue
    assert colour_of("deep teal") == TEAL  # the last word names the colour
    assert colour_of("pale rose gold") == colour_of("rose gold") != colour_of("gold")


def test_unknown_colour_words_get_a_colour_from_sha256():
    digest = hashlib.sha256(b"mystery colour").digest()
    assert colour_of("mystery colour") == (digest[0], digest[1], digest[2])


def test_a_subject_looks_the_same_in_every_frame():
    """Its placeholder colour depends on its description, not on the scene, slot or other subjects."""
    colour = preview.subject_colour(BOTTLE)
    alone = render(request(make_prompt(scene_text="The bottle alone", subjects=(BOTTLE,))))
    both = make_prompt(scene_text="Both of them", subjects=(WOMAN, BOTTLE))
    together = render(request(both, aspect_ratio="16:9"))
    assert len(solid_blocks(alone, colour)) > 0
    assert len(solid_blocks(together, colour)) > 0
    assert preview.subject_colour(WOMAN) != colour


@pytest.mark.parametrize("aspect_ratio", ["21:9", "9:16"])
def test_long_text_and_three_references_render(aspect_ratio: str):
    long_text = ("The camera glides past a very long descriptive sentence, " * 40)[:2000]
    prompt = make_prompt(scene_text=long_text, continuity=long_text[:1500])
    references = [
        ReferenceImage(f"reference/scene_{k}", solid_png(colour))
        for k, colour in enumerate((MAGENTA, CYAN, ORANGE), start=1)
    ]
    image = render(request(prompt, references, aspect_ratio))
    assert image.size == canvas_size(aspect_ratio)
    for colour in (MAGENTA, CYAN, ORANGE):
        assert len(solid_blocks(image, colour, size=6)) > 0


def test_wrapped_text_stays_inside_its_width():
    font = preview.load_font(preview.BODY)
    text = "word " * 300 + "x" * 500 + " café — “quoted”"
    lines = preview._wrap(text, font, 200, max_lines=6)
    assert len(lines) == 6
    assert all(font.getlength(line) <= 200 for line in lines)
    assert lines[-1].endswith("...")
    unbroken = preview._wrap("y" * 2000, font, 150, max_lines=3)
    assert len(unbroken) == 3 and all(font.getlength(line) <= 150 for line in unbroken)
    assert preview._wrap("short words", font, 200, max_lines=2) == ["short words"]
    assert preview._wrap("café — “quoted”", font, 400, max_lines=1) == ['cafe - "quoted"']


def test_renders_with_the_bitmap_font_when_freetype_is_missing(monkeypatch):
    """What Pillow does without FreeType: its font core is a placeholder that raises ImportError when used."""
    missing = DeferredError(ImportError("The _imagingft C module is not installed"))
    monkeypatch.setattr(ImageFont, "core", missing)
    preview.load_font.cache_clear()
    try:
        assert not isinstance(preview.load_font(preview.BODY), ImageFont.FreeTypeFont)
        image = render(request(references=[ReferenceImage("reference/scene_1", solid_png(MAGENTA))]))
    finally:
        preview.load_font.cache_clear()
    assert image.size == canvas_size("9:16")
    assert len(solid_blocks(image, MAGENTA)) > 0


def test_a_new_take_is_a_visibly_different_frame():
    first = PreviewGenerator().generate(request()).png
    second = PreviewGenerator().generate(dataclasses.replace(request(), take=2)).png
    assert first != second
