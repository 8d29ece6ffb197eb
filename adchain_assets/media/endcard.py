"""The brand's end card: the last frame of the ad, rendered with Pillow at the ad's size.

On the brand's first colour (a near-black without one): the logo, then the call to action, then the address,
as one block centred in the safe area above the legal line, which sits at the safe area's foot. The text colour is
the brand's second colour when it reads well on the first (WCAG contrast of at least 4.5), else white or
near-black, whichever contrasts more. Each text has its share of the safe area's height and is set with
:func:`layout.fit_text` (wrapped, shrunk down to its smallest size; below that the brief is refused by
:func:`end_card_problems`, and a card made anyway shrinks further rather than cut anything off). The logo is
scaled to fit half the safe width and :data:`LOGO_SHARE` of its height, never enlarged beyond 4x.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from adchain_assets.media.layout import SafeArea, fit_or_shrink, fit_text

DEFAULT_BACKGROUND = "#111114"
LOGO_SHARE = 0.28  # of the safe area's height
# Each text: (share of the safe area's height, largest and smallest size as fractions of the shorter side, lines)
TEXTS = {
    "cta": (0.30, 0.10, 0.045, 3),
    "url": (0.12, 0.055, 0.032, 2),
    "legal": (0.20, 0.032, 0.02, 6),
}
GAP = 0.03  # of the safe area's height, between the blocks


@dataclass(frozen=True)
class EndCard:
    """What the card shows; ``font_key`` as :func:`layout.font_key` gives it."""

    cta: str = ""
    url: str = ""
    legal: str = ""
    colors: Sequence[str] = ()
    logo: Optional[bytes] = None
    font_key: str = "default"


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def card_colours(colors: Sequence[str]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(background, ink) of the card."""
    background = _rgb(colors[0] if colors else DEFAULT_BACKGROUND)
    if len(colors) > 1 and contrast(background, _rgb(colors[1])) >= 4.5:
        return background, _rgb(colors[1])
    white, black = (255, 255, 255), (17, 17, 17)
    return background, max((white, black), key=lambda ink: contrast(background, ink))


def _setting(card: EndCard, field: str, size: tuple[int, int], safe: SafeArea, *, shrink: bool):
    text = " ".join(getattr(card, field).split())
    if not text:
        return None
    share, high, low, lines = TEXTS[field]
    left, top, right, bottom = safe.box(size)
    short = min(size)
    fit = fit_or_shrink if shrink else fit_text
    return fit(text, card.font_key, right - left, (bottom - top) * share, round(short * high), round(short * low),
               lines)


def end_card_problems(card: EndCard, size: tuple[int, int], safe: SafeArea) -> list[tuple[str, str]]:
    """The texts that do not fit their share of the card at their smallest size, as (field, reason)."""
    problems = []
    for field, (share, _, low, lines) in TEXTS.items():
        if getattr(card, field).strip() and _setting(card, field, size, safe, shrink=False) is None:
            problems.append((field, (
                f"is too long for the end card: it does not fit {lines} line(s) in {share:.0%} of the safe area's"
                f" height at the smallest size ({low:.1%} of the frame's shorter side); shorten it")))
    return problems


def render_end_card(card: EndCard, size: tuple[int, int], safe: SafeArea) -> np.ndarray:
    """The card as an RGB frame of ``size`` (width, height)."""
    background, ink = card_colours(card.colors)
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = safe.box(size)
    safe_w, safe_h = right - left, bottom - top
    gap = round(safe_h * GAP)
    centre = (left + right) / 2
    legal = _setting(card, "legal", size, safe, shrink=True)
    if legal is not None:
        legal.draw(draw, centre, bottom - legal.height, ink)
    blocks: list[tuple[str, object, int]] = []  # (kind, thing, height)
    if card.logo:
        with Image.open(io.BytesIO(card.logo)) as opened:
            logo = opened.convert("RGBA")
        scale = min(safe_w * 0.5 / logo.width, safe_h * LOGO_SHARE / logo.height, 4.0)
        logo = logo.resize((max(1, round(logo.width * scale)), max(1, round(logo.height * scale))),
                           Image.Resampling.LANCZOS)
        blocks.append(("logo", logo, logo.height))
    for field in ("cta", "url"):
        fitted = _setting(card, field, size, safe, shrink=True)
        if fitted is not None:
            blocks.append((field, fitted, fitted.height))
    region_bottom = bottom - (legal.height + gap if legal is not None else 0)
    total = sum(height for _, _, height in blocks) + gap * max(0, len(blocks) - 1)
    y = top + max(0, (region_bottom - top - total) // 2)
    for kind, thing, height in blocks:
        if kind == "logo":
            image.paste(thing, (round(centre - thing.width / 2), y), thing)
        else:
            thing.draw(draw, centre, y, ink)
        y += height + gap
    return np.asarray(image)
