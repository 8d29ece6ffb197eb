"""A clip in another shape, cut from a clip the video model made: the crop window and the crop.

:func:`crop_window` picks the largest window of the wanted shape inside the clip (the clip's full height for a
narrower shape, its full width for a wider one), placed along the one axis it can slide on:

* every face box given must lie wholly inside it (a face is never cut); when the faces are spread further apart
  than the window is long, there is no such window and :class:`CropError` says so, with the figures;
* among the places that keep every face, the one closest to centring the subjects (the faces and the other boxes
  to keep, e.g. where the product was found; those alone when they fit, else the faces'); with no boxes at all,
  the centre of the clip.

The boxes are given in the clip's pixels: :func:`boxes_in_clip` maps boxes found on a frame (the clip's first or
last frame as stored, often larger than the clip) to the clip, the way a video model fits a frame to the clip
(scaled to cover it, then centred).

:func:`crop_mp4` cuts the window out of every frame with ffmpeg's ``crop`` filter and encodes it as the project
encodes every MP4 (H.264, yuv420p, bit-exact: the same clip and window give the same bytes); a sound track is
copied as it is. A 4 s 360x640 clip takes about 0.3 s.

What it cannot do: follow a subject that moves during the clip (the window is fixed, chosen from boxes found on
the first and last frames), or see a face the detector missed.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import imageio_ffmpeg

from adchain_assets.media.mp4 import ENCODER_OPTIONS

BoxLike = Sequence[float]  # (left, top, right, bottom), right and bottom exclusive


class CropError(ValueError):
    """No window of the wanted shape keeps every face in frame."""


@dataclass(frozen=True)
class Window:
    """A crop window in a clip's pixels; width and height are even (yuv420p)."""

    left: int
    top: int
    width: int
    height: int

    def to_json(self) -> dict[str, int]:
        return {"x": self.left, "y": self.top, "width": self.width, "height": self.height}


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def window_size(size: tuple[int, int], aspect_ratio: str) -> tuple[int, int]:
    """The largest (width, height) of ``aspect_ratio`` inside ``size``, both even."""
    width, height = size
    w, h = (float(part) for part in aspect_ratio.split(":"))
    if width / height > w / h:  # the clip is wider: full height
        return min(_even(height * w / h), width // 2 * 2), height // 2 * 2
    return width // 2 * 2, min(_even(width * h / w), height // 2 * 2)


def crop_window(size: tuple[int, int], aspect_ratio: str, faces: Sequence[BoxLike] = (),
                keep: Sequence[BoxLike] = ()) -> Window:
    """The window of ``aspect_ratio`` in a clip of ``size`` (width, height) that holds every box of ``faces``
    whole and centres the subjects as well as that allows (see the module docstring)."""
    width, height = size
    win_w, win_h = window_size(size, aspect_ratio)
    horizontal = win_w < width  # the axis the window slides on
    room, length = (width, win_w) if horizontal else (height, win_h)
    axis = (0, 2) if horizontal else (1, 3)

    def span(boxes: Sequence[BoxLike]) -> tuple[float, float]:
        return min(b[axis[0]] for b in boxes), max(b[axis[1]] for b in boxes)

    low, high = 0.0, float(room - length)
    if faces:
        first, last = span(faces)
        if last - first > length:
            across = "across" if horizontal else "from top to bottom"
            raise CropError(
                f"the faces span {last - first:.0f} px {across} (from {first:.0f} to {last:.0f}) in this"
                f" {width}x{height} clip; a {aspect_ratio} window of it is {length} px, so a face would be cut")
        low, high = max(low, last - length), min(high, first)
    subjects = list(faces) + list(keep)
    if subjects and span(subjects)[1] - span(subjects)[0] <= length:
        centre = sum(span(subjects)) / 2
    elif faces:
        centre = sum(span(faces)) / 2
    elif keep:
        centre = sum(span(keep)) / 2
    else:
        centre = room / 2
    start = min(max(centre - length / 2, low), high)
    # whole pixels that still hold every face (a sub-pixel overlap is left when the faces fill the window exactly)
    offset = min(max(round(start), math.ceil(low - 1e-6)), math.floor(high + 1e-6))
    offset = min(max(offset, 0), room - length)
    return Window(offset, 0, win_w, win_h) if horizontal else Window(0, offset, win_w, win_h)


def boxes_in_clip(boxes: Sequence[BoxLike], frame_size: tuple[int, int],
                  clip_size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """``boxes`` found on a frame of ``frame_size`` in the pixels of a clip of ``clip_size`` that shows that frame
    scaled to cover the clip and centred (what the video backends do with a first or last frame)."""
    (fw, fh), (cw, ch) = frame_size, clip_size
    scale = max(cw / fw, ch / fh)
    dx, dy = (fw * scale - cw) / 2, (fh * scale - ch) / 2
    mapped = []
    for left, top, right, bottom in boxes:
        box = (left * scale - dx, top * scale - dy, right * scale - dx, bottom * scale - dy)
        clipped = (max(0.0, box[0]), max(0.0, box[1]), min(float(cw), box[2]), min(float(ch), box[3]))
        if clipped[2] > clipped[0] and clipped[3] > clipped[1]:  # a box the clip shows at all
            mapped.append(clipped)
    return mapped


def crop_mp4(mp4: bytes, window: Window) -> bytes:
    """``mp4`` with every frame cut to ``window``; its sound track, if any, copied as it is."""
    with tempfile.TemporaryDirectory(prefix="adchain-crop-") as tmp:
        source, target = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
        source.write_bytes(mp4)
        run = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(source),
             "-map", "0:v:0", "-map", "0:a?", "-vf",
             f"crop={window.width}:{window.height}:{window.left}:{window.top},setsar=1",
             "-c:v", "libx264", "-pix_fmt", "yuv420p", *ENCODER_OPTIONS, "-c:a", "copy", str(target)],
            capture_output=True, text=True, errors="replace", check=False,
        )
        if run.returncode:
            raise ValueError(f"cannot crop this clip: {run.stderr.strip()[-300:]}")
        return target.read_bytes()
