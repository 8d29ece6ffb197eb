"""An offline clip maker, so a campaign's motion can be reviewed end to end for free.

A preview clip is the start frame dissolving into the end frame while the camera pushes slowly in on the start
frame (zoom 1.0 to 1.08, centred). Its first frame is the start frame and its last the end frame, each scaled
and centre-cropped to the clip's size, so the cut between scenes is where a real model's would be. It has no
sound. The clip depends on the request alone, and the encoder is bit-exact, so the same request gives the same
MP4 bytes.
"""

from __future__ import annotations

import io
import time
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

from adchain_assets.media.mp4 import FPS, encode_mp4
from adchain_assets.providers.video.base import GeneratedVideo, VideoGenerator, VideoRequest

LONG_SIDE = 640  # small, so that a 4 s preview encodes in about a second
PUSH_IN = 1.08


class PreviewVideoGenerator(VideoGenerator):
    backend = "preview"
    model = "preview-dissolve-v1"

    def generate(self, request: VideoRequest, meter=None, resume=None) -> GeneratedVideo:  # free, local: nothing to meter or resume
        started = time.perf_counter()
        size = frame_size(request.aspect_ratio)
        count = max(1, round(request.duration_s * FPS))
        mp4 = encode_mp4(_dissolve(_fit(request.start_png, size), _fit(request.end_png, size), count), size, FPS)
        return GeneratedVideo(
            mp4=mp4,
            backend=self.backend,
            model=self.model,
            duration_s=count / FPS,
            width=size[0],
            height=size[1],
            frame_count=count,
            fps=float(FPS),
            latency_s=time.perf_counter() - started,
            cost_usd=0.0,
        )


def frame_size(aspect_ratio: str, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """(width, height) for ``aspect_ratio`` ("9:16"), the long side ``long_side``, both even."""
    w, h = (float(x) for x in aspect_ratio.split(":"))
    scale = long_side / max(w, h)
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


def _fit(png: bytes, size: tuple[int, int]) -> Image.Image:
    """The image scaled and centre-cropped to fill ``size`` exactly."""
    with Image.open(io.BytesIO(png)) as image:
        return ImageOps.fit(image.convert("RGB"), size, Image.Resampling.LANCZOS)


def _dissolve(start: Image.Image, end: Image.Image, count: int) -> Iterator[np.ndarray]:
    """``count`` frames from ``start`` to ``end``: an eased cross-fade over a push-in on the start frame."""
    width, height = start.size
    for i in range(count):
        t = i / (count - 1) if count > 1 else 1.0
        zoom = 1.0 + (PUSH_IN - 1.0) * t
        crop_w, crop_h = width / zoom, height / zoom
        box = ((width - crop_w) / 2, (height - crop_h) / 2, (width + crop_w) / 2, (height + crop_h) / 2)
        pushed = start.resize((width, height), Image.Resampling.BILINEAR, box=box)
        mix = t * t * (3 - 2 * t)  # smoothstep: the dissolve starts and ends gently
        yield np.asarray(Image.blend(pushed, end, mix))
