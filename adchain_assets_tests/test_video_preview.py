"""Preview clips and the ad: real, playable H.264 MP4s that start, end and cut where they should."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from adchain_assets.brief.model import ASPECT_RATIOS
from adchain_assets.media.ad import assemble_ad, title_card
from adchain_assets.media.mp4 import probe, read_frames
from adchain_assets.media.text import ascii_text
from adchain_assets.providers.video.base import VideoRequest
from adchain_assets.providers.video.preview import PreviewVideoGenerator, frame_size

CLOSE = 8.0  # mean absolute difference per channel value (of 255) that still counts as "the same picture"


def picture(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth gradient with a few solid shapes: structure to compare, nothing that H.264 mangles."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 255, 3)
    pixels = np.stack([(x * 255 / width + base[0]) % 256, (y * 255 / height + base[1]) % 256,
                       np.full(x.shape, base[2])], axis=-1).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.uniform(0, 0.7, 2) * size
        draw.ellipse((x0, y0, x0 + width * 0.3, y0 + height * 0.3), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def decoded(mp4: bytes) -> list[np.ndarray]:
    with read_frames(mp4) as (_, frames):
        return list(frames)


def clip(aspect_ratio: str, seeds: tuple[int, int], duration_s: float = 1.0) -> tuple[bytes, Image.Image, Image.Image]:
    size = frame_size(aspect_ratio)
    start, end = picture(size, seeds[0]), picture(size, seeds[1])
    request = VideoRequest("a slow push-in", png(start), png(end), aspect_ratio, duration_s=duration_s)
    return PreviewVideoGenerator().generate(request).mp4, start, end


@pytest.mark.parametrize("aspect_ratio, size", [("9:16", (360, 640)), ("16:9", (640, 360))])
def test_preview_clip_is_a_playable_h264_mp4_of_the_right_shape(aspect_ratio, size):
    start, end = picture(size, 1), picture(size, 2)
    video = PreviewVideoGenerator().generate(VideoRequest("p", png(start), png(end), aspect_ratio, duration_s=1.0))

    assert video.mp4[4:8] == b"ftyp"
    assert video.mp4.index(b"moov") < video.mp4.index(b"mdat")  # index first: plays while it downloads
    info = probe(video.mp4)
    assert (info.codec, info.width, info.height, info.fps, info.frame_count, info.audio) == (
        "h264", *size, 24.0, 24, False
    )
    with read_frames(video.mp4) as (meta, frames):
        assert meta["pix_fmt"].startswith("yuv420p")
        assert sum(1 for _ in frames) == 24
    assert (video.width, video.height, video.frame_count, video.fps, video.duration_s) == (*size, 24, 24.0, 1.0)
    assert (video.backend, video.cost_usd) == ("preview", 0.0)


def test_preview_clip_starts_on_the_start_frame_and_ends_on_the_end_frame():
    mp4, start, end = clip("9:16", (3, 4))
    frames = decoded(mp4)
    start_px, end_px = np.asarray(start), np.asarray(end)

    assert mad(frames[0], start_px) < CLOSE < mad(frames[0], end_px)
    assert mad(frames[-1], end_px) < CLOSE < mad(frames[-1], start_px)
    middle = frames[len(frames) // 2]
    assert mad(middle, start_px) > CLOSE and mad(middle, end_px) > CLOSE  # it moves in between


def test_frames_are_fitted_to_the_clip_size_without_distortion():
    size = frame_size("16:9")
    square = picture((900, 900), 5)
    video = PreviewVideoGenerator().generate(VideoRequest("p", png(square), png(picture((300, 500), 6)), "16:9", 0.5))

    first = decoded(video.mp4)[0]
    assert first.shape == (size[1], size[0], 3)
    assert mad(first, np.asarray(ImageOps.fit(square, size, Image.Resampling.LANCZOS))) < CLOSE


def test_same_request_gives_the_same_bytes():
    assert clip("16:9", (7, 8), 0.5)[0] == clip("16:9", (7, 8), 0.5)[0]


@pytest.mark.parametrize("duration_s, frames", [(0.5, 12), (1.5, 36), (0.01, 1)])
def test_frame_count_is_duration_times_fps(duration_s, frames):
    video = PreviewVideoGenerator().generate(
        VideoRequest("p", png(picture((64, 64), 1)), png(picture((64, 64), 2)), "1:1", duration_s=duration_s)
    )
    assert video.frame_count == probe(video.mp4).frame_count == frames


def test_frame_sizes_are_even_with_the_long_side_640():
    for aspect_ratio in ASPECT_RATIOS:
        width, height = frame_size(aspect_ratio)
        w, h = (int(x) for x in aspect_ratio.split(":"))
        assert width % 2 == 0 and height % 2 == 0 and max(width, height) == 640
        assert abs(width / height - w / h) < 0.02


# --- the ad ---


@pytest.fixture(scope="module")
def three_clips() -> list[bytes]:
    return [clip("16:9", (10 + k, 20 + k))[0] for k in range(3)]


def test_ad_joins_clips_with_crossfades_after_a_title(three_clips):
    mp4, info = assemble_ad(three_clips, crossfade_s=0.25, title="Summer Glow", title_s=0.5)

    # 0.5 s title + 3 x 1 s clips - 3 cross-fades (title->1, 1->2, 2->3) of 0.25 s
    assert info.duration_s == pytest.approx(2.75)
    assert info.frame_count == probe(mp4).frame_count == 66
    assert (info.width, info.height, info.fps, info.crossfade_s, info.title_s) == (640, 360, 24.0, 0.25, 0.5)
    assert info.clip_starts_s == pytest.approx((0.25, 1.0, 1.75))

    frames = decoded(mp4)
    assert len(frames) == 66
    middles = [decoded(source)[12] for source in three_clips]  # each clip's own middle frame
    for k, start_s in enumerate(info.clip_starts_s):
        in_ad = frames[round(start_s * 24) + 12]
        assert mad(in_ad, middles[k]) < CLOSE
        assert all(mad(in_ad, other) > CLOSE for j, other in enumerate(middles) if j != k)
    title = frames[0]
    assert title.mean() < 40 and title.max() > 200  # light text on a dark card


def test_ad_without_title_is_the_clips_minus_crossfades(three_clips):
    mp4, info = assemble_ad(three_clips, crossfade_s=0.5)
    assert info.frame_count == probe(mp4).frame_count == 3 * 24 - 2 * 12
    assert (info.title_s, info.clip_starts_s) == (0.0, (0.0, 0.5, 1.0))
    assert mad(decoded(mp4)[0], decoded(three_clips[0])[0]) < CLOSE


def test_ad_fits_clips_of_another_size_and_shortens_a_crossfade_too_long_for_them(three_clips):
    portrait = clip("9:16", (30, 31), duration_s=0.5)[0]
    mp4, info = assemble_ad([three_clips[0], portrait], crossfade_s=2.0)
    assert (probe(mp4).width, probe(mp4).height) == (640, 360)
    assert info.crossfade_s == 0.25  # half the 12-frame clip
    assert info.frame_count == 24 + 12 - 6


def test_ad_needs_a_clip():
    with pytest.raises(ValueError):
        assemble_ad([])


def test_title_text_is_folded_to_ascii():
    assert ascii_text("  Caf\u00e9 \u201cGl\u00f6w\u201d \u2014 na\u00efve\n\t\u2603 ") == 'Cafe "Glow" - naive'
    assert ascii_text("\u2603\u2603") == ""
    card = title_card("A title long enough that it has to wrap onto more than one line", (360, 640))
    assert card.shape == (640, 360, 3)
    rows = np.flatnonzero(card.max(axis=(1, 2)) > 200)
    assert rows.size and rows.max() - rows.min() > 60  # several lines, centred
