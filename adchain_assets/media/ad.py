"""The ad: an optional title card, then every scene's clip in order, each joined to the next by a cross-fade, then
an optional end card, cross-faded in after the last scene.

The clips are decoded (scaled and centre-cropped to the first clip's size and resampled to its frame rate if
they differ, so clips from different backends still fit), each clip's overlays (its caption, the logo bug) laid
over its frames, blended where they overlap and encoded again as one H.264 MP4. Frames stream through: only one
cross-fade's worth is held in memory, so 1080p clips are fine. The MP4 made here is silent: the sound is mixed
by :mod:`adchain_assets.media.sound` (see :mod:`adchain_assets.media.finish`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from adchain_assets.media.mp4 import encode_mp4, probe, read_frames
from adchain_assets.media.text import ascii_text

BACKGROUND = (14, 14, 18)
INK = (240, 240, 236)


@dataclass(frozen=True)
class AdInfo:
    duration_s: float
    frame_count: int
    fps: float
    width: int
    height: int
    crossfade_s: float  # as used: shortened when a clip is too short for the one asked for
    title_s: float  # 0.0 without a title card
    clip_starts_s: tuple[float, ...]  # where each clip begins in the ad (its cross-fade in, if any)
    clip_lengths_s: tuple[float, ...] = ()  # how long each clip plays in the ad, its cross-fades included
    end_card_s: float = 0.0  # 0.0 without an end card; else from its cross-fade in to the ad's end


# What is laid over a clip's frames: called with each frame (RGB) and returns the frame to use.
Decorate = Callable[[np.ndarray], np.ndarray]
# An end card for a frame of the ad's size (width, height): an RGB frame.
EndCardMaker = Callable[[tuple[int, int]], np.ndarray]


def assemble_ad(
    clips: Sequence[bytes], crossfade_s: float = 0.5, title: str | None = None, title_s: float = 1.5, *,
    decorate: Optional[Callable[[int, tuple[int, int]], Optional[Decorate]]] = None,
    end_card: Optional[EndCardMaker] = None, end_card_s: float = 0.0,
) -> tuple[bytes, AdInfo]:
    """One MP4 of ``clips`` in order, after a ``title_s`` title card if ``title`` has any printable text, and
    before an ``end_card_s`` end card if ``end_card`` is given. ``decorate(index, size)`` gives what is laid over
    clip ``index``'s frames (None: nothing)."""
    if not clips:
        raise ValueError("an ad needs at least one clip")
    infos = [probe(clip) for clip in clips]
    first = infos[0]
    size, fps = (first.width, first.height), first.fps
    text = ascii_text(title or "")
    title_frames = max(1, round(title_s * fps)) if text else 0
    end_frames = max(1, round(end_card_s * fps)) if end_card is not None else 0
    clip_frames = [round(info.frame_count * fps / info.fps) for info in infos]
    lengths = ([title_frames] if text else []) + clip_frames + ([end_frames] if end_frames else [])
    overlap = min(round(crossfade_s * fps), min(lengths) // 2) if len(lengths) > 1 else 0

    def segments() -> Iterator[Iterator[np.ndarray]]:
        if text:
            card = title_card(text, size)
            yield (card for _ in range(title_frames))
        for index, (clip, info) in enumerate(zip(clips, infos, strict=True)):
            same = (info.width, info.height) == size and info.fps == fps
            over = decorate(index, size) if decorate is not None else None
            with read_frames(clip, size=None if same else size, fps=None if same else fps) as (_, frames):
                yield frames if over is None else (over(frame) for frame in frames)
        if end_frames:
            last = np.ascontiguousarray(end_card(size), dtype=np.uint8)
            yield (last for _ in range(end_frames))

    starts: list[int] = []
    mp4 = encode_mp4(_joined(segments(), overlap, starts), size, fps)
    frame_count = probe(mp4).frame_count
    clip_starts = starts[1 if text else 0:][:len(clips)]
    return mp4, AdInfo(
        duration_s=frame_count / fps,
        frame_count=frame_count,
        fps=fps,
        width=size[0],
        height=size[1],
        crossfade_s=overlap / fps,
        title_s=title_frames / fps,
        clip_starts_s=tuple(start / fps for start in clip_starts),
        clip_lengths_s=tuple(count / fps for count in clip_frames),
        end_card_s=(frame_count - starts[-1]) / fps if end_frames else 0.0,
    )


def _joined(segments: Iterator[Iterator[np.ndarray]], overlap: int, starts: list[int]) -> Iterator[np.ndarray]:
    """The segments' frames back to back, the last ``overlap`` frames of each blended into the next one's first.

    Appends each segment's first frame number (in the output) to ``starts``.
    """
    held: deque[np.ndarray] = deque()  # the current segment's latest frames, not yet written
    written = 0
    for frames in segments:
        starts.append(written)
        tail = len(held)  # the previous segment's last frames: what this one fades in over
        for i, frame in enumerate(frames):
            if i < tail:
                weight = (i + 1) / (tail + 1)
                mixed = held.popleft().astype(np.float32) * (1 - weight) + frame.astype(np.float32) * weight
                frame = np.rint(mixed).astype(np.uint8)
                written += 1
                yield frame
                continue
            held.append(frame)
            if len(held) > overlap:
                written += 1
                yield held.popleft()
    yield from held


def title_card(text: str, size: tuple[int, int]) -> np.ndarray:
    """``text`` centred on a dark frame, wrapped to the frame's width, in Pillow's own font."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, min(width, height) // 12))
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width * 0.85:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    draw.multiline_text(
        (width / 2, height / 2), "\n".join(lines), font=font, fill=INK, anchor="mm", align="center",
        spacing=font.size // 3,
    )
    return np.asarray(image)
