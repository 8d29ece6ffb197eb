"""Where text may go on a frame of a given shape, in which font, and how large it can be set there.

Safe areas: a vertical 9:16 frame keeps text and logos clear of the top 14% and the bottom 20% (where the short-video
platforms put their captions and buttons) and of 6% at each side; every other shape keeps to the title-safe area
of EBU R 95 (5% at each edge). Every function takes the frame's size and its :class:`SafeArea` as parameters, so
each placement of an ad gets its own layout.

Fonts: the brief's font file, else DejaVu Sans Bold (shipped in ``fonts/`` with its licence; Pillow's own default
font draws ASCII only, and ad texts carry accents, dashes and currency signs). :func:`missing_glyphs` finds the
characters a font cannot draw (drawn as its empty-box glyph), so a brief can be refused before a super shows boxes.

:func:`fit_text` sets a text in a box: greedy word wrap, at the largest size from ``max_px`` down to ``min_px``
(in steps of about 4%) whose lines all fit, in at most ``max_lines`` lines. Words are never broken, so a word wider
than the box at ``min_px`` does not fit. :func:`fit_or_shrink` is what renderers use: the fit, else the text set
smaller still until it fits, so text is never cut off (a brief whose text needs that is refused by the check).
Sizes are the callers' fractions of the frame's shorter side, so a layout scales with the frame.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from PIL import ImageDraw, ImageFont

DEFAULT_FONT = Path(__file__).with_name("fonts") / "DejaVuSans-Bold.ttf"
LINE_SPACING = 0.18  # of the font size, between lines
_NOT_A_CHARACTER = "\U0010fffd"  # a private-use code point no font draws: its mask is the font's empty box


@dataclass(frozen=True)
class SafeArea:
    """Margins, as fractions of the frame's height (top, bottom) and width (left, right), that text keeps clear of."""

    top: float
    bottom: float
    left: float
    right: float

    def box(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels of a frame of ``size`` (width, height)."""
        width, height = size
        return (round(width * self.left), round(height * self.top),
                width - round(width * self.right), height - round(height * self.bottom))


VERTICAL_SAFE = SafeArea(top=0.14, bottom=0.20, left=0.06, right=0.06)
TITLE_SAFE = SafeArea(top=0.05, bottom=0.05, left=0.05, right=0.05)  # EBU R 95's title-safe area
SAFE_AREAS = {"9:16": VERTICAL_SAFE}


def safe_area(aspect_ratio: str) -> SafeArea:
    return SAFE_AREAS.get(aspect_ratio, TITLE_SAFE)


def reference_size(aspect_ratio: str, short_side: int = 1080) -> tuple[int, int]:
    """A frame of ``aspect_ratio`` whose shorter side is ``short_side`` (both even): where briefs are checked."""
    w, h = (int(part) for part in aspect_ratio.split(":"))
    scale = short_side / min(w, h)
    return round(w * scale / 2) * 2, round(h * scale / 2) * 2


# ------------------------------------------------------------------------------------------------------ fonts

_FONT_FILES: dict[str, bytes] = {}


def font_key(data: Optional[bytes]) -> str:
    """A font file's handle for :func:`font_at`: its sha256 (the default font's when ``data`` is None)."""
    if data is None:
        return "default"
    key = hashlib.sha256(data).hexdigest()
    _FONT_FILES.setdefault(key, data)
    return key


@lru_cache(maxsize=256)
def font_at(key: str, px: int) -> ImageFont.FreeTypeFont:
    """The font ``key`` (from :func:`font_key`) at ``px`` pixels."""
    if key == "default":
        return ImageFont.truetype(str(DEFAULT_FONT), px)
    return ImageFont.truetype(io.BytesIO(_FONT_FILES[key]), px)


def missing_glyphs(text: str, key: str) -> list[str]:
    """The distinct characters of ``text`` that font ``key`` has no glyph for, in order of appearance."""
    font = font_at(key, 32)
    empty_box = font.getmask(_NOT_A_CHARACTER)
    empty = (empty_box.size, bytes(empty_box))
    missing: list[str] = []
    for char in dict.fromkeys(text):
        if char.isspace() or char in missing:
            continue
        mask = font.getmask(char)
        if (mask.size, bytes(mask)) == empty:
            missing.append(char)
    return missing


# ---------------------------------------------------------------------------------------------- setting text

@dataclass(frozen=True)
class Fitted:
    """A text set in a box: its lines at ``px`` pixels, and the block's size."""

    lines: tuple[str, ...]
    px: int
    font: ImageFont.FreeTypeFont
    line_height: int
    spacing: int
    width: int
    height: int

    def draw(self, draw: ImageDraw.ImageDraw, centre_x: float, top: float, fill, **kwargs) -> None:
        """Each line centred on ``centre_x``, the block's top at ``top``."""
        y = top
        for line in self.lines:
            draw.text((centre_x, y), line, font=self.font, fill=fill, anchor="ma", **kwargs)
            y += self.line_height + self.spacing


def _wrap(words: list[str], font: ImageFont.FreeTypeFont, width: float) -> Optional[list[str]]:
    lines: list[str] = []
    for word in words:
        if font.getlength(word) > width:
            return None
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def set_text(text: str, key: str, px: int, width: float) -> Optional[Fitted]:
    """``text`` wrapped to ``width`` at ``px`` (None when a word is wider than ``width``)."""
    font = font_at(key, px)
    lines = _wrap(text.split(), font, width)
    if lines is None:
        return None
    ascent, descent = font.getmetrics()
    spacing = round(px * LINE_SPACING)
    widest = max((font.getlength(line) for line in lines), default=0.0)
    height = len(lines) * (ascent + descent) + max(0, len(lines) - 1) * spacing
    return Fitted(tuple(lines), px, font, ascent + descent, spacing, round(widest), height)


def _sizes(high: int, low: int):
    px = high
    while px >= low:
        yield px
        px = min(px - 1, int(px * 0.96))


def fit_text(text: str, key: str, width: float, height: float, max_px: int, min_px: int,
             max_lines: int) -> Optional[Fitted]:
    """The largest setting of ``text`` from ``max_px`` down to ``min_px`` within ``width`` x ``height`` in at most
    ``max_lines`` lines; None when even ``min_px`` does not fit."""
    if not text.split():
        return None
    for px in _sizes(max(max_px, 1), max(min_px, 1)):
        fitted = set_text(text, key, px, width)
        if fitted is not None and len(fitted.lines) <= max_lines and fitted.height <= height:
            return fitted
    return None


def fit_or_shrink(text: str, key: str, width: float, height: float, max_px: int, min_px: int,
                  max_lines: int) -> Optional[Fitted]:
    """:func:`fit_text`, else the text set below ``min_px`` (any number of lines) until it fits: never cut off.
    None only for a text with nothing to draw."""
    fitted = fit_text(text, key, width, height, max_px, min_px, max_lines)
    if fitted is not None or not text.split():
        return fitted
    for px in _sizes(max(min_px - 1, 1), 1):
        fitted = set_text(text, key, px, width)
        if fitted is not None and fitted.height <= height:
            return fitted
    return set_text(text, key, 1, width)
