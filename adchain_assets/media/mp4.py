"""MP4 plumbing: encode RGB frames into an MP4, decode one into frames, probe what is in one.

MP4s are encoded and decoded by the ffmpeg that ``imageio-ffmpeg`` ships, so nothing depends on the machine's
own ffmpeg. Every MP4 this project writes is H.264 in yuv420p with the index at the front (plays in every
browser and player), encoded single-threaded with bit-exact flags: the same frames give the same bytes on any
machine with the same imageio-ffmpeg build.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
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
    """What is in ``mp4``: the first video stream's codec, size, rate and frame count, and whether it has sound.

    One ffmpeg process: a stream copy into nothing counts the video packets without decoding them, and the
    input's description it prints first names the codec, size, rate and streams."""
    with _file(mp4) as path:
        run = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
             "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
            capture_output=True, text=True, errors="replace", check=False,
        )
    counts = re.findall(r"frame=\s*(\d+)", run.stderr)
    source = run.stderr.split("Stream mapping:")[0]  # the input's description, before the output's
    video = re.search(r"Stream #\S+: Video: (\w+)[^\n]*?, (\d+)x(\d+)[^\n]*", source)
    if run.returncode or not counts or video is None:
        raise ValueError(f"not a readable video: {run.stderr.strip()[-300:]}")
    rate = re.search(r", (\d+(?:\.\d+)?) fps", video.group(0)) or re.search(r", (\d+(?:\.\d+)?) tbr", video.group(0))
    return VideoInfo(
        codec=video.group(1),
        width=int(video.group(2)),
        height=int(video.group(3)),
        fps=float(rate.group(1)) if rate else 0.0,
        frame_count=int(counts[-1]),
        audio=re.search(r"Stream #\S+: Audio:", source) is not None,
    )


def first_frame(mp4: bytes) -> bytes:
    """``mp4``'s first frame as a PNG: one ffmpeg process that decodes that frame alone."""
    with _file(mp4) as path:
        run = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
             "-map", "0:v:0", "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=False,
        )
    if run.returncode or not run.stdout:
        raise ValueError(f"not a readable video: {run.stderr.decode(errors='replace').strip()[-300:]}")
    return run.stdout


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
