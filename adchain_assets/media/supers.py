"""Supers: a scene's caption and the logo bug, drawn once as overlays and laid over every frame of the scene in
the ad (never into the clip asset), and the captions as an SRT file.

A caption is white text on a dark translucent plate (readable on any picture), set with :func:`layout.fit_text`
in the safe area's width, at most :data:`CAPTION_LINES` lines, between :data:`CAPTION_MAX` and :data:`CAPTION_MIN`
of the frame's shorter side. It goes to the first of the lower third, the top and the middle of the safe area
whose plate does not touch a face (the caller passes the face boxes of the scene's start and end frames, as
detected in those images, and they are mapped to the ad's frame the way the clip is: scaled to fill, centre
cropped). When every position touches a face, the one that covers the least face area is taken and the placement
says so. Faces that move during a clip away from both its first and last frame are not seen.

The logo bug is the brand's logo at 14% of the frame's width (at most 8% of its height), 90% opaque, in the safe
area's top right corner; a caption at the top goes below it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from adchain_assets.media.layout import Fitted, SafeArea, fit_or_shrink, fit_text

CAPTION_MAX, CAPTION_MIN = 0.068, 0.04  # font size, of the frame's shorter side
CAPTION_LINES = 3
CAPTION_HEIGHT = 0.30  # of the safe area's height: the most a caption's plate takes
PLATE = (12, 12, 16, 166)  # 65% opaque
INK = (255, 255, 255, 255)
POSITIONS = ("lower", "upper", "middle")
FACE_MARGIN = 0.04  # of the frame's shorter side, around each face
BUG_WIDTH, BUG_MAX_HEIGHT, BUG_OPACITY = 0.14, 0.08, 0.9


@dataclass(frozen=True)
class Overlay:
    """An RGBA picture at (left, top) of a frame; :meth:`apply` blends it over a frame."""

    left: int
    top: int
    rgba: np.ndarray  # height x width x 4, uint8

    def apply(self, frame: np.ndarray) -> np.ndarray:
        height, width = self.rgba.shape[:2]
        alpha = self.rgba[..., 3:4].astype(np.float32) / 255.0
        out = np.array(frame, dtype=np.uint8, copy=True)
        region = out[self.top:self.top + height, self.left:self.left + width].astype(np.float32)
        mixed = region * (1.0 - alpha) + self.rgba[..., :3].astype(np.float32) * alpha
        out[self.top:self.top + height, self.left:self.left + width] = np.rint(mixed).astype(np.uint8)
        return out


def apply_all(frame: np.ndarray, overlays: Sequence[Overlay]) -> np.ndarray:
    for overlay in overlays:
        frame = overlay.apply(frame)
    return frame


@dataclass(frozen=True)
class FaceBox:
    """A face in a source image of ``width`` x ``height`` (the scene's start or end frame), in its pixels."""

    left: float
    top: float
    right: float
    bottom: float
    width: int
    height: int

    def in_frame(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """The box in a frame of ``size`` that shows the source image scaled to fill and centre-cropped."""
        out_w, out_h = size
        scale = max(out_w / self.width, out_h / self.height)
        dx, dy = (self.width * scale - out_w) / 2, (self.height * scale - out_h) / 2
        return (self.left * scale - dx, self.top * scale - dy, self.right * scale - dx, self.bottom * scale - dy)


@dataclass(frozen=True)
class Caption:
    """A caption as drawn: its overlay, where it went and at what size."""

    overlay: Overlay
    position: str
    font_px: int
    lines: tuple[str, ...]
    over_face: bool

    def describe(self) -> dict:
        return {"position": self.position, "font_px": self.font_px, "lines": list(self.lines),
                "over_face": self.over_face}


def caption_setting(text: str, font_key: str, size: tuple[int, int], safe: SafeArea, *,
                    shrink: bool = False) -> Optional[Fitted]:
    """``text`` set as a caption of a ``size`` frame: None when it does not fit at the smallest caption size
    (with ``shrink`` it is set smaller instead)."""
    left, top, right, bottom = safe.box(size)
    short = min(size)
    pad = round(short * 0.03)
    fit = fit_or_shrink if shrink else fit_text
    return fit(" ".join(text.split()), font_key, right - left - 2 * pad, (bottom - top) * CAPTION_HEIGHT - 2 * pad,
               round(short * CAPTION_MAX), round(short * CAPTION_MIN), CAPTION_LINES)


def render_caption(text: str, font_key: str, size: tuple[int, int], safe: SafeArea,
                   faces: Sequence[FaceBox] = (), reserved_top: int = 0) -> Optional[Caption]:
    """The caption's overlay for a frame of ``size``, placed clear of ``faces`` when a position allows
    (``reserved_top`` pixels below the safe area's top are kept for the logo bug)."""
    fitted = caption_setting(text, font_key, size, safe, shrink=True)
    if fitted is None:
        return None
    left, top, right, bottom = safe.box(size)
    pad = round(min(size) * 0.03)
    plate_w, plate_h = fitted.width + 2 * pad, fitted.height + 2 * pad
    x = round((left + right - plate_w) / 2)
    tops = {
        "lower": bottom - plate_h,
        "upper": top + reserved_top,
        "middle": round((top + reserved_top + bottom - plate_h) / 2),
    }
    margin = min(size) * FACE_MARGIN
    boxes = [face.in_frame(size) for face in faces]

    def covered(y: int) -> float:
        area = 0.0
        for fl, ft, fr, fb in boxes:
            w = min(x + plate_w, fr + margin) - max(x, fl - margin)
            h = min(y + plate_h, fb + margin) - max(y, ft - margin)
            area += max(0.0, w) * max(0.0, h)
        return area

    position = next((name for name in POSITIONS if covered(tops[name]) == 0.0), None)
    over_face = position is None
    if position is None:
        position = min(POSITIONS, key=lambda name: covered(tops[name]))
    plate = Image.new("RGBA", (plate_w, plate_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(plate)
    draw.rounded_rectangle((0, 0, plate_w - 1, plate_h - 1), radius=round(pad * 0.8), fill=PLATE)
    fitted.draw(draw, plate_w / 2, pad, INK)
    overlay = Overlay(x, max(0, tops[position]), np.asarray(plate))
    return Caption(overlay, position, fitted.px, fitted.lines, over_face)


def render_logo_bug(logo_png: bytes, size: tuple[int, int], safe: SafeArea) -> Overlay:
    """The logo small in the safe area's top right corner."""
    width, height = size
    left, top, right, bottom = safe.box(size)
    with Image.open(io.BytesIO(logo_png)) as image:
        logo = image.convert("RGBA")
    scale = min(width * BUG_WIDTH / logo.width, height * BUG_MAX_HEIGHT / logo.height)
    logo = logo.resize((max(1, round(logo.width * scale)), max(1, round(logo.height * scale))),
                       Image.Resampling.LANCZOS)
    rgba = np.asarray(logo).copy()
    rgba[..., 3] = np.rint(rgba[..., 3] * BUG_OPACITY).astype(np.uint8)
    return Overlay(right - logo.width, top, rgba)


# ----------------------------------------------------------------------------------------------------- SRT

def srt_time(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def srt(cues: Sequence[tuple[float, float, str]]) -> str:
    """SubRip text of ``(start_s, end_s, text)`` cues, numbered from 1 ("" without cues)."""
    blocks = [f"{n}\n{srt_time(start)} --> {srt_time(end)}\n{' '.join(text.split())}\n"
              for n, (start, end, text) in enumerate(cues, start=1)]
    return "\n".join(blocks)
