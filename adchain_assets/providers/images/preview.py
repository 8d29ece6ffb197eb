"""An offline storyboard renderer, so a creative team can review a campaign's structure for free.

A preview frame is a diagram, not a picture. It shows what a real model would be asked for (slot, purpose,
scene text, subjects, continuity), what it would be shown (the reference images, in order) and the brief's
colour palette. Each subject is drawn as a placeholder coloured from its description, so a subject keeps its
colour in every frame and a change in a description is visible at a glance.

The output depends on the request alone (no clock, randomness or hash seed: colours come from sha256), so
the same request gives the same PNG bytes in every process and reruns hit the same cache entries.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import re
import time
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageColor, ImageDraw, ImageOps

from adchain_assets.brief.model import ASPECT_RATIOS
from adchain_assets.media.text import Font, drawable_text, load_font
from adchain_assets.plan.prompts import SubjectLine
from adchain_assets.providers.images.base import GeneratedImage, ImageGenerator, ImageRequest, ReferenceImage

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]

LONG_SIDE = 768
MARGIN = 12
GAP = 8
PADDING = 10
PALETTE_ROW = 28
SWATCH = 18
MAX_SWATCHES = 8
TITLE, BODY, SMALL = 20, 15, 12

WHITE: RGB = (245, 245, 245)
MUTED: RGB = (200, 200, 200)
PANEL = (0, 0, 0, 150)
NEUTRAL: list[RGB] = [(214, 214, 210), (150, 150, 148)]
ELLIPSIS = "..."

# Words a brief uses for colours that CSS does not name (or names badly: CSS "gold" is a yellow).
COLOUR_WORDS: dict[str, RGB] = {
    "gold": (212, 175, 55),
    "warm gold": (226, 180, 90),
    "rose gold": (183, 110, 121),
    "champagne": (247, 231, 206),
    "ivory": (255, 250, 235),
    "cream": (255, 246, 220),
    "pearl": (234, 224, 200),
    "off-white": (250, 249, 246),
    "blush": (222, 165, 164),
    "blush pink": (243, 187, 194),
    "dusty rose": (220, 174, 150),
    "nude": (227, 188, 154),
    "peach": (255, 203, 164),
    "sage": (178, 190, 160),
    "sage green": (156, 175, 136),
    "amber": (255, 191, 0),
    "terracotta": (226, 114, 91),
    "copper": (184, 115, 51),
    "bronze": (205, 127, 50),
    "rust": (183, 65, 14),
    "mustard": (225, 173, 1),
    "burgundy": (128, 0, 32),
    "mauve": (224, 176, 255),
    "emerald": (80, 200, 120),
    "mint": (152, 255, 152),
    "sand": (194, 178, 128),
    "taupe": (72, 60, 50),
    "charcoal": (54, 69, 79),
    "cobalt": (0, 71, 171),
}

class PreviewGenerator(ImageGenerator):
    """Renders storyboard frames locally: free, fast and byte-for-byte repeatable."""

    backend = "preview"
    model = "preview-storyboard-v1"
    draws_faces = False  # characters are coloured placeholders

    def generate(self, request: ImageRequest, meter=None) -> GeneratedImage:  # free: nothing to meter
        started = time.perf_counter()
        png = render(request)
        return GeneratedImage(
            png=png,
            backend=self.backend,
            model=self.model,
            latency_s=time.perf_counter() - started,
            cost_usd=0.0,
            usage={},
        )


def render(request: ImageRequest) -> bytes:
    """The storyboard frame of ``request`` as PNG bytes."""
    width, height = canvas_size(request.aspect_ratio)
    prompt = request.prompt
    palette = palette_colours(dict(prompt.look).get("color palette", ""))
    image = _background((width, height), [rgb for _, rgb in palette] or NEUTRAL)
    draw = ImageDraw.Draw(image, "RGBA")
    layout = _layout(width, height)
    header_bottom = _draw_header(draw, layout.header, request)
    stage = layout.stage
    if layout.stacked:  # the stage takes the room a short header leaves
        stage = (stage[0], header_bottom + GAP, stage[2], stage[3])
    _draw_stage(draw, stage, prompt.subjects)
    _draw_references(image, draw, layout.references, request.references)
    _draw_palette(draw, layout.palette, palette)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def canvas_size(aspect_ratio: str) -> tuple[int, int]:
    """(width, height) for ``"w:h"``: long side 768 px, both sides even, the ratio as close as that allows."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValueError(f"aspect ratio {aspect_ratio!r} is not one of {', '.join(ASPECT_RATIOS)}")
    w, h = (int(part) for part in aspect_ratio.split(":"))
    short = 2 * round(LONG_SIDE * min(w, h) / max(w, h) / 2)
    return (LONG_SIDE, short) if w >= h else (short, LONG_SIDE)


# --- palette ---------------------------------------------------------------------------------------------


def palette_colours(text: str) -> list[tuple[str, RGB]]:
    """The named colours of a ``color palette`` look value (``"warm gold, ivory and blush"``), in order."""
    names: list[str] = []
    for part in re.split(r"[,;/&\n]|\band\b", text.lower()):
        name = " ".join(part.replace(".", " ").split())
        if name and name not in names:
            names.append(name)
    return [(name, colour_of(name)) for name in names[:MAX_SWATCHES]]


def colour_of(name: str) -> RGB:
    """RGB of a colour phrase: the longest known suffix (``"pale rose gold"`` -> rose gold), else sha256."""
    words = name.split()
    for start in range(len(words)):
        phrase = " ".join(words[start:])
        if phrase in COLOUR_WORDS:
            return COLOUR_WORDS[phrase]
        try:
            r, g, b = ImageColor.getrgb(phrase.replace(" ", ""))[:3]
            return r, g, b
        except ValueError:
            continue
    digest = hashlib.sha256(name.encode()).digest()
    return digest[0], digest[1], digest[2]


def subject_colour(subject: SubjectLine) -> RGB:
    """A mid-tone colour from the description, so the same subject looks the same in every frame."""
    digest = hashlib.sha256(subject.description.strip().encode()).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    r, g, b = colorsys.hsv_to_rgb(hue, 0.4 + digest[2] / 255 * 0.3, 0.7 + digest[3] / 255 * 0.25)
    return round(r * 255), round(g * 255), round(b * 255)


def _shade(colour: RGB, factor: float) -> RGB:
    r, g, b = (round(c * factor) for c in colour)
    return r, g, b


def _tint(colour: RGB, amount: float) -> RGB:
    r, g, b = (round(c + (255 - c) * amount) for c in colour)
    return r, g, b


def _background(size: tuple[int, int], colours: Sequence[RGB]) -> Image.Image:
    """Palette colours as bands blended along the long side (a few pixels scaled up: fast)."""
    width, height = size
    strip = Image.new("RGB", (len(colours), 1) if width >= height else (1, len(colours)))
    strip.putdata(list(colours))
    return strip.resize(size, Image.Resampling.BILINEAR)


# --- layout ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    header: Box
    stage: Box
    references: Box
    palette: Box
    stacked: bool


def _layout(width: int, height: int) -> _Layout:
    """Portrait and square frames stack the regions; landscape frames put the text in a left column."""
    if height >= width:
        header = (MARGIN, MARGIN, width - MARGIN, MARGIN + round(height * 0.36))
        palette = (MARGIN, height - MARGIN - PALETTE_ROW, width - MARGIN, height - MARGIN)
        references = (MARGIN, palette[1] - GAP - round(height * 0.22), width - MARGIN, palette[1] - GAP)
        stage = (MARGIN, header[3] + GAP, width - MARGIN, references[1] - GAP)
    else:
        split = round(width * 0.46)
        palette = (MARGIN, height - MARGIN - PALETTE_ROW, split, height - MARGIN)
        header = (MARGIN, MARGIN, split, palette[1] - GAP)
        references = (split + GAP, height - MARGIN - round(height * 0.4), width - MARGIN, height - MARGIN)
        stage = (split + GAP, MARGIN, width - MARGIN, references[1] - GAP)
    return _Layout(header, stage, references, palette, stacked=height >= width)


def _panel(draw: ImageDraw.ImageDraw, box: Box) -> Box:
    """A translucent dark panel that keeps white text readable on any palette; returns its inner box."""
    draw.rounded_rectangle(box, radius=8, fill=PANEL)
    x0, y0, x1, y1 = box
    return x0 + PADDING, y0 + PADDING, x1 - PADDING, y1 - PADDING


# --- text ------------------------------------------------------------------------------------------------


def _line_height(font: Font) -> int:
    return font.getbbox("Ag")[3] + 4


def _fit(text: str, font: Font, width: float) -> int:
    """How many leading characters of ``text`` fit in ``width`` px (at least one, so wrapping advances)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _clip(text: str, font: Font, width: float, *, cut: bool = False) -> str:
    """``text`` on one line of ``width`` px, with an ellipsis if anything was lost (or ``cut`` says so)."""
    if not cut and font.getlength(text) <= width:
        return text
    room = width - font.getlength(ELLIPSIS)
    kept = text[: _fit(text, font, room)] if room > 0 and font.getlength(text[:1]) <= room else ""
    return kept.rstrip() + ELLIPSIS


def _wrap(text: str, font: Font, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines`` lines of ``width`` px; over-long words are broken."""
    lines: list[str] = []
    current = ""
    for word in drawable_text(text).split():
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while font.getlength(word) > width and len(lines) <= max_lines:
            cut = _fit(word, font, width)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
        if len(lines) > max_lines:
            break
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [_clip(lines[max_lines - 1], font, width, cut=True)]
    return lines


def _centred_text(draw: ImageDraw.ImageDraw, centre: tuple[float, float], text: str, font: Font) -> None:
    left, top, right, bottom = font.getbbox(text)
    x, y = centre
    draw.text((round(x - (left + right) / 2), round(y - (top + bottom) / 2)), text, font=font, fill=WHITE)


class _Pen:
    """Writes lines top-down inside a box and stops at its bottom edge, so text never overflows."""

    def __init__(self, draw: ImageDraw.ImageDraw, box: Box):
        self.draw = draw
        self.x0, self.y, _, self.y1 = box

    def has_room(self, font: Font) -> bool:
        return self.y + _line_height(font) <= self.y1

    def write(self, lines: Sequence[str], font: Font, fill: RGB, indent: int = 0) -> None:
        for line in lines:
            if not self.has_room(font):
                return
            self.draw.text((self.x0 + indent, self.y), line, font=font, fill=fill)
            self.y += _line_height(font)

    def skip(self, pixels: int) -> None:
        self.y += pixels


# --- regions ---------------------------------------------------------------------------------------------


def _draw_header(draw: ImageDraw.ImageDraw, box: Box, request: ImageRequest) -> int:
    """Slot, purpose, scene text, subjects and continuity, in a panel that shrinks to fit them.

    The scene text gets the lines the rest leaves over. Returns the panel's bottom edge.
    """
    prompt = request.prompt
    x0, y0, x1, y1 = box
    width = x1 - x0 - 2 * PADDING
    title, body, small = load_font(TITLE), load_font(BODY), load_font(SMALL)
    dot = _line_height(small) - 6
    purpose = _wrap(prompt.purpose, small, width, 2)
    subjects = [
        (subject_colour(s), _clip(drawable_text(f"{s.id} ({s.kind}): {s.description}"), small, width - dot - 6))
        for s in prompt.subjects
    ]
    continuity: list[str] = []
    if prompt.continuity.strip():
        continuity = _wrap(f"Continuity: {prompt.continuity}", small, width, 2)
    fixed = 2 * PADDING + 2 * GAP + _line_height(title)
    fixed += (len(purpose) + max(len(subjects), 1) + len(continuity)) * _line_height(small)
    scene = _wrap(prompt.scene_text, body, width, max(1, (y1 - y0 - fixed) // _line_height(body)))
    bottom = min(y1, y0 + fixed + len(scene) * _line_height(body))

    inner = _panel(draw, (x0, y0, x1, bottom))
    tag = "storyboard preview" + "".join(
        f", {name} {number}" for name, number in (("take", request.take), ("candidate", request.candidate)) if number
    )
    draw.text((inner[2] - small.getlength(tag), inner[1] + 4), tag, font=small, fill=MUTED)
    pen = _Pen(draw, inner)
    pen.write([_clip(prompt.title, title, width - small.getlength(tag) - GAP)], title, WHITE)
    pen.write(purpose, small, MUTED)
    pen.skip(GAP)
    pen.write(scene, body, WHITE)
    pen.skip(GAP)
    if not subjects:
        pen.write(["no subjects"], small, MUTED)
    for colour, line in subjects:
        if not pen.has_room(small):
            break
        draw.ellipse((pen.x0, pen.y + 3, pen.x0 + dot, pen.y + 3 + dot), fill=colour, outline=WHITE)
        pen.write([line], small, WHITE, indent=dot + 6)
    pen.write(continuity, small, MUTED)
    return bottom


def _draw_stage(draw: ImageDraw.ImageDraw, box: Box, subjects: Sequence[SubjectLine]) -> None:
    """One placeholder per subject, side by side, each captioned with its id."""
    x0, y0, x1, y1 = box
    small = load_font(SMALL)
    if not subjects:
        _centred_text(draw, ((x0 + x1) / 2, (y0 + y1) / 2), "no subjects in this scene", small)
        return
    caption = _line_height(small) + 6
    slot = (x1 - x0) / len(subjects)
    top, bottom = y0 + 4, y1 - caption - 4
    for index, subject in enumerate(subjects):
        centre = x0 + slot * (index + 0.5)
        aspect, draw_figure = (0.42, _draw_bottle) if subject.kind == "product" else (0.7, _draw_person)
        height = bottom - top
        figure = _Figure(centre, top, min(slot * 0.8, height * aspect), height)
        draw_figure(draw, figure, subject_colour(subject))
        label = _clip(subject.id, small, slot - 16)
        half = small.getlength(label) / 2 + 6
        pill = (round(centre - half), y1 - caption, round(centre + half), y1)
        draw.rounded_rectangle(pill, radius=6, fill=PANEL)
        _centred_text(draw, (centre, y1 - caption / 2), label, small)


@dataclass(frozen=True)
class _Figure:
    """Where a placeholder is drawn; its parts are given in fractions of its width (from the centre line)
    and of its height (from the top), so each shape keeps its proportions at any size."""

    cx: float
    top: float
    width: float
    height: float

    def box(self, left: float, upper: float, right: float, lower: float) -> Box:
        return (
            round(self.cx + left * self.width),
            round(self.top + upper * self.height),
            round(self.cx + right * self.width),
            round(self.top + lower * self.height),
        )


def _draw_bottle(draw: ImageDraw.ImageDraw, figure: _Figure, colour: RGB) -> None:
    """A product placeholder: body, neck, cap and a label band."""
    outline = _shade(colour, 0.45)
    radius = round(figure.width * 0.18)
    draw.rounded_rectangle(figure.box(-0.5, 0.25, 0.5, 1.0), radius, fill=colour, outline=outline, width=2)
    draw.rectangle(figure.box(-0.14, 0.15, 0.14, 0.27), fill=colour, outline=outline, width=2)
    cap = figure.box(-0.24, 0.0, 0.24, 0.16)
    draw.rounded_rectangle(cap, radius // 3, fill=_shade(colour, 0.7), outline=outline, width=2)
    draw.rectangle(figure.box(-0.34, 0.5, 0.34, 0.72), fill=_tint(colour, 0.6), outline=outline, width=1)


def _draw_person(draw: ImageDraw.ImageDraw, figure: _Figure, colour: RGB) -> None:
    """A character placeholder: head and shoulders."""
    outline = _shade(colour, 0.45)
    head = 0.18 * figure.height / figure.width  # the head's radius, in widths
    shoulders = figure.box(-0.5, 0.44, 0.5, 1.0)
    draw.rounded_rectangle(shoulders, round(figure.width * 0.3), fill=colour, outline=outline, width=2,
                           corners=(True, True, False, False))
    draw.rectangle(figure.box(-0.4 * head, 0.29, 0.4 * head, 0.46), fill=colour, outline=outline, width=2)
    face = figure.box(-0.85 * head, 0.0, 0.85 * head, 0.36)
    draw.ellipse(face, fill=_tint(colour, 0.25), outline=outline, width=2)


def _draw_references(image: Image.Image, draw: ImageDraw.ImageDraw, box: Box,
                     references: Sequence[ReferenceImage]) -> None:
    """The images the model is shown, left to right in the order shown, each with its number and asset."""
    x0, y0, x1, y1 = _panel(draw, box)
    small = load_font(SMALL)
    line = _line_height(small)
    if not references:
        _centred_text(draw, ((x0 + x1) / 2, (y0 + y1) / 2), "no reference (first image)", small)
        return
    draw.text((x0, y0), _clip("References shown, in order:", small, x1 - x0), font=small, fill=MUTED)
    y0 += line + 2
    cell = (x1 - x0 - GAP * (len(references) - 1)) / len(references)
    labels = [_wrap(reference.asset, small, cell, 2) for reference in references]
    frame_height = y1 - y0 - line * max(map(len, labels)) - 4
    for index, (reference, label) in enumerate(zip(references, labels)):
        left = x0 + round(index * (cell + GAP))
        thumb = _thumbnail(reference.png, (max(1, int(cell) - 4), max(1, frame_height - 4)))
        tx = left + (round(cell) - thumb.width) // 2
        ty = y0 + (frame_height - thumb.height) // 2
        draw.rectangle((tx - 2, ty - 2, tx + thumb.width + 1, ty + thumb.height + 1), fill=WHITE)
        image.paste(thumb, (tx, ty))
        draw.ellipse((tx + 3, ty + 3, tx + 23, ty + 23), fill=(0, 0, 0, 190), outline=WHITE)
        _centred_text(draw, (tx + 13, ty + 13), str(index + 1), small)
        _Pen(draw, (left, y0 + frame_height + 4, left + round(cell), y1)).write(label, small, WHITE)


def _thumbnail(png: bytes, size: tuple[int, int]) -> Image.Image:
    """The reference scaled (up or down) to fit ``size``, keeping its aspect ratio."""
    with Image.open(io.BytesIO(png)) as source:
        return ImageOps.contain(source.convert("RGB"), size, Image.Resampling.BILINEAR)


def _draw_palette(draw: ImageDraw.ImageDraw, box: Box, palette: Sequence[tuple[str, RGB]]) -> None:
    """A swatch and name per palette colour, as many as fit on the row."""
    x0, y0, x1, y1 = box
    draw.rounded_rectangle(box, radius=6, fill=PANEL)
    small = load_font(SMALL)
    middle = (y0 + y1) // 2
    _, top, _, bottom = small.getbbox("Ag")
    text_y = middle - (top + bottom) // 2
    if not palette:
        draw.text((x0 + 8, text_y), "no colour palette: neutral greys", font=small, fill=MUTED)
        return
    x = x0 + 5
    for name, rgb in palette:
        room = x1 - 6 - (x + SWATCH + 4)
        if room < small.getlength("ab" + ELLIPSIS):
            break
        swatch = (x, middle - SWATCH // 2, x + SWATCH - 1, middle + SWATCH // 2 - 1)
        draw.rectangle(swatch, fill=rgb, outline=WHITE)
        label = _clip(drawable_text(name), small, room)
        draw.text((x + SWATCH + 4, text_y), label, font=small, fill=WHITE)
        x += SWATCH + 4 + round(small.getlength(label)) + 12
