"""The one small interface every video model sits behind, and the MP4 plumbing they share.

A generator turns a :class:`VideoRequest` (prompt, start frame, end frame, shape) into a :class:`GeneratedVideo`
(MP4 bytes plus what the clip is, who made it and what it cost). Adding a model is one new module with one
class that implements :meth:`VideoGenerator.generate`.

MP4s are encoded and decoded by the ffmpeg that ``imageio-ffmpeg`` ships, so nothing depends on the machine's
own ffmpeg. Every MP4 this project writes is H.264 in yuv420p with the index at the front (plays in every
browser and player), encoded single-threaded with bit-exact flags: the same frames give the same bytes on any
machine with the same imageio-ffmpeg build.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import imageio_ffmpeg
import numpy as np

FPS = 24
ENCODER_OPTIONS = [
    "-preset", "veryfast",
    "-crf", "18",
    "-threads", "1",  # x264's output depends on its thread count, and so on the machine's cores
    "-movflags", "+faststart",
    "-fflags", "+bitexact",  # no muxer version string in the file
    "-flags:v", "+bitexact",
]


class VideoGenerationError(Exception):
    """The model answered, but with no usable clip (filtered, failed, never finished).

    ``reason`` is the model's own word for it (``RAI_FILTERED``, an operation's status such as
    ``INVALID_ARGUMENT``, or ``TIMEOUT``), so that messages and retries can be decided on it rather than on text.

    ``retryable`` is set when asking again may well succeed (a transient HTTP status that outlasted the retries, a
    poll deadline passed while the operation still runs): a retried step resumes the stored operation, it never
    starts a second one. A safety filter, an operation error and a retired model are final.
    """

    def __init__(self, message: str, reason: str = "UNKNOWN", retryable: bool = False):
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class VideoRequest:
    """A clip that starts on ``start_png`` and ends on ``end_png``; ``duration_s`` is a wish the model rounds."""

    prompt: str
    start_png: bytes
    end_png: bytes
    aspect_ratio: str
    duration_s: float = 4.0
    resolution: str = "720p"
    audio: bool = False


@dataclass(frozen=True)
class GeneratedVideo:
    """The clip as it came out: duration, size and frame count are measured from ``mp4``, not asked for."""

    mp4: bytes
    backend: str
    model: str
    duration_s: float
    width: int
    height: int
    frame_count: int
    fps: float
    latency_s: float
    cost_usd: float


class OperationSlot:
    """Where the long-running operation of one clip request is remembered: ``<root>/<key[:2]>/<key>.operation.json``.

    ``root`` is the generation cache's folder (a local path or an fsspec URL) and ``key`` the clip's request
    fingerprint (the cache key), so the record sits beside the clip's cache entry. A generator saves the operation's
    name the moment the start call returns (written atomically: temporary file, fsync, rename) and, on any later
    attempt for the same request (a retried step, a rerun, another worker after this one was killed), resumes
    polling that operation instead of paying for a new one. The record is cleared once the operation is known to
    have produced nothing billable (an operation error, a safety filter).
    """

    def __init__(self, root: str, key: str):
        from upath import UPath

        self.key = key
        self.path = UPath(str(root)) / key[:2] / f"{key}.operation.json"

    def __repr__(self) -> str:
        return f"OperationSlot({str(self.path)!r})"

    def load(self) -> dict[str, Any] | None:
        """The stored record (``{"operation", "backend", "model", "route", "started_at", ...}``), or None."""
        import json

        try:
            record = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # a record is written atomically; an unreadable one is not ours to trust
            return None
        return record if isinstance(record, dict) and record.get("operation") else None

    def save(self, record: dict[str, Any]) -> None:
        import json

        from adchain_assets.storage import write_atomically

        write_atomically(self.path, json.dumps(record, sort_keys=True).encode() + b"\n")

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class VideoGenerator(ABC):
    backend: str
    model: str

    @abstractmethod
    def generate(self, request: VideoRequest, meter=None, resume: OperationSlot | None = None) -> GeneratedVideo:
        """Return one clip for the request, or raise :class:`VideoGenerationError`.

        ``meter`` records each billed reply in the ledger; ``resume`` (given by the cache, per request fingerprint)
        is where a backend with long-running operations keeps the operation it started, so that it is never paid
        for twice. Backends that make clips locally ignore both.
        """


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    fps: float
    frame_count: int
    audio: bool

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0


def encode_mp4(frames: Iterable[np.ndarray], size: tuple[int, int], fps: float = FPS) -> bytes:
    """Encode RGB frames (``height x width x 3`` uint8, streamed) into an MP4; ``size`` is (width, height)."""
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"frame size {width}x{height} must be even for yuv420p")
    with tempfile.TemporaryDirectory(prefix="adchain-video-") as tmp:
        path = Path(tmp) / "out.mp4"
        writer = imageio_ffmpeg.write_frames(
            str(path), size, fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
            macro_block_size=2, ffmpeg_log_level="error", output_params=ENCODER_OPTIONS,
        )
        writer.send(None)  # start ffmpeg
        count = 0
        try:
            for frame in frames:
                if frame.shape != (height, width, 3):
                    raise ValueError(f"frame of shape {frame.shape} in a {width}x{height} video")
                writer.send(np.ascontiguousarray(frame, dtype=np.uint8))
                count += 1
        finally:
            writer.close()
        if not count:
            raise ValueError("a video needs at least one frame")
        return path.read_bytes()


@contextmanager
def read_frames(
    mp4: bytes, size: tuple[int, int] | None = None, fps: float | None = None
) -> Iterator[tuple[dict[str, Any], Iterator[np.ndarray]]]:
    """Decode ``mp4`` to RGB frames, streamed: ``with read_frames(mp4) as (meta, frames): ...``.

    ``meta`` is imageio-ffmpeg's (``codec``, ``size``, ``fps``, ``duration``). ``size`` (width, height) scales
    and centre-crops every frame to fill it; ``fps`` resamples time (dropping or repeating frames).
    """
    filters = [f"fps={fps}"] if fps else []
    if size:
        width, height = size
        filters += [
            f"scale={width}:{height}:force_original_aspect_ratio=increase", f"crop={width}:{height}", "setsar=1"
        ]
    with _file(mp4) as path:
        reader = imageio_ffmpeg.read_frames(str(path), output_params=["-vf", ",".join(filters)] if filters else None)
        try:
            meta = next(reader)
            width, height = meta["size"]
            yield meta, (np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader)
        finally:
            reader.close()


def probe(mp4: bytes) -> VideoInfo:
    """What is in ``mp4``: the first video stream's codec, size, rate and frame count, and whether it has sound."""
    with _file(mp4) as path:
        reader = imageio_ffmpeg.read_frames(str(path))
        try:
            meta = next(reader)
        finally:
            reader.close()
        # A stream copy into nothing: ffmpeg counts the video packets without decoding them.
        run = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
             "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
            capture_output=True, text=True, errors="replace", check=False,
        )
    counts = re.findall(r"frame=\s*(\d+)", run.stderr)
    if run.returncode or not counts:
        raise ValueError(f"not a readable video: {run.stderr.strip()[-300:]}")
    width, height = meta["size"]
    return VideoInfo(
        codec=meta["codec"],
        width=width,
        height=height,
        fps=float(meta["fps"]),
        frame_count=int(counts[-1]),
        audio=re.search(r"Stream #\S+.*: Audio:", run.stderr) is not None,
    )


def without_audio(mp4: bytes) -> bytes:
    """``mp4`` with its video stream only: the pictures are copied as they are, the sound tracks dropped."""
    with _file(mp4) as path:
        out = path.with_name("silent.mp4")
        run = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
             "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", "-fflags", "+bitexact", str(out)],
            capture_output=True, text=True, errors="replace", check=False,
        )
        if run.returncode:
            raise ValueError(f"not a readable video: {run.stderr.strip()[-300:]}")
        return out.read_bytes()


@contextmanager
def _file(data: bytes) -> Iterator[Path]:
    """``data`` as a temporary file, for ffmpeg, which needs to seek in an MP4."""
    with tempfile.TemporaryDirectory(prefix="adchain-video-") as tmp:
        path = Path(tmp) / "in.mp4"
        path.write_bytes(data)
        yield path
