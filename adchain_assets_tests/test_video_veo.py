"""VeoVideoGenerator, through the real google-genai SDK, against a local server speaking Veo's Gemini API protocol."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from adchain_assets.media.mp4 import probe, read_frames
from adchain_assets.plan.catalogue import DEFAULT_VIDEO_MODEL, price
from adchain_assets.providers.video.base import VideoGenerationError, VideoRequest
from adchain_assets.providers.video.veo import VeoVideoGenerator, veo_seconds
from adchain_assets_tests.gemini_server import error_reply
from adchain_assets_tests.veo_server import Fail, FakeVeo, Filter, Finish, Never

API_KEY = "AIza-test-SECRET-7d1e0a"
MODEL = DEFAULT_VIDEO_MODEL


def noise_png(size: tuple[int, int], seed: int) -> bytes:
    """Every pixel different, so any re-encoding or mix-up of the frames shows."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def solid_png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def served_clip(tmp_path_factory) -> bytes:
    """A 1 s 320x180 H.264 clip with an AAC sound track, as Veo's clips have one."""
    path = Path(tmp_path_factory.mktemp("veo")) / "clip.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin",
         "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=1",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path.read_bytes()


@pytest.fixture
def fake_veo(served_clip):
    with FakeVeo(video=served_clip, api_key=API_KEY) as server:
        yield server


def generator(fake: FakeVeo, **options) -> VeoVideoGenerator:
    options = {"poll_interval_s": 0.01, "max_wait_s": 5.0, "timeout_s": 10.0, "initial_delay_s": 0.01, **options}
    return VeoVideoGenerator(api_key=API_KEY, base_url=fake.base_url, **options)


def request(**changes) -> VideoRequest:
    fields = {
        "prompt": "The bottle turns slowly toward the window light",
        "start_png": noise_png((32, 18), 1),
        "end_png": noise_png((32, 18), 2),
        "aspect_ratio": "16:9",
        "duration_s": 4.0,
        "resolution": "720p",
        "audio": True,
        **changes,
    }
    return VideoRequest(**fields)


def test_start_request_carries_the_frames_prompt_and_shape(fake_veo):
    asked = request(aspect_ratio="9:16", resolution="1080p", duration_s=6)
    generator(fake_veo).generate(asked)

    (start,) = fake_veo.starts
    assert (start.api_version, start.model) == ("v1beta", MODEL)
    assert start.prompt == asked.prompt
    assert start.image == asked.start_png and start.last_frame == asked.end_png
    assert np.array_equal(pixels(start.image), pixels(asked.start_png))
    assert np.array_equal(pixels(start.last_frame), pixels(asked.end_png))
    assert start.image_mime_type == start.last_frame_mime_type == "image/png"
    assert start.parameters == {"aspectRatio": "9:16", "durationSeconds": 6, "resolution": "1080p", "sampleCount": 1}
    post = fake_veo.requests[0]
    assert (post.method, post.path) == ("POST", f"/v1beta/models/{MODEL}:predictLongRunning")
    assert post.headers["x-goog-api-key"] == API_KEY


def test_polls_until_done_then_downloads_the_served_clip(fake_veo, served_clip):
    fake_veo.script(Finish(polls=3))
    video = generator(fake_veo).generate(request())

    operation = fake_veo.starts[0].operation
    assert fake_veo.polls(operation) == 4  # three "not done", then done
    paths = [(r.method, r.path.split("?")[0], r.status) for r in fake_veo.requests]
    assert paths == [
        ("POST", f"/v1beta/models/{MODEL}:predictLongRunning", 200),
        *[("GET", f"/v1beta/{operation}", 200)] * 4,
        ("GET", "/v1beta/files/file000001:download", 302),  # the real API redirects to the bytes, too
        ("GET", "/media/file000001.mp4", 200),
    ]
    assert video.mp4 == served_clip
    assert (video.backend, video.model) == ("veo", MODEL)
    assert (video.width, video.height, video.frame_count, video.fps, video.duration_s) == (320, 180, 24, 24.0, 1.0)
    assert video.cost_usd == pytest.approx(price(MODEL, {"seconds": 4, "resolution": "720p"}))  # billed as asked: 4 s
    assert video.latency_s > 0


def test_a_clip_without_audio_has_its_sound_track_dropped_and_its_pictures_kept(fake_veo, served_clip):
    silent = generator(fake_veo).generate(request(audio=False))
    assert probe(served_clip).audio and not probe(silent.mp4).audio
    with read_frames(served_clip) as (_, served), read_frames(silent.mp4) as (_, kept):
        assert all(np.array_equal(a, b) for a, b in zip(served, kept, strict=True))
    assert "generateAudio" not in fake_veo.starts[0].parameters  # the Gemini API refuses it


def test_a_filtered_clip_is_an_error_with_the_models_reasons(fake_veo):
    fake_veo.script(Filter(reasons=("The prompt could not be submitted. Support codes: 58061214",), polls=1))
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake_veo).generate(request())
    assert caught.value.reason == "RAI_FILTERED"
    assert "Support codes: 58061214" in str(caught.value)
    assert fake_veo.starts[0].operation in str(caught.value)
    assert not fake_veo.files  # nothing to download


def test_an_operation_error_is_an_error_with_its_status_and_message(fake_veo):
    fake_veo.script(Fail(code=3, message="Unsupported last frame size."))
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake_veo).generate(request())
    assert caught.value.reason == "INVALID_ARGUMENT"
    assert "Unsupported last frame size." in str(caught.value)


def test_an_operation_that_never_finishes_times_out_naming_it(fake_veo):
    fake_veo.script(Never())
    started = time.perf_counter()
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake_veo, poll_interval_s=0.05, max_wait_s=0.4).generate(request())
    elapsed = time.perf_counter() - started

    assert caught.value.reason == "TIMEOUT"
    assert fake_veo.starts[0].operation in str(caught.value)
    assert 0.4 <= elapsed < 2.0
    assert fake_veo.polls(fake_veo.starts[0].operation) >= 5


def test_a_rate_limited_start_is_retried_then_a_retryable_error_naming_the_status(fake_veo):
    quota = error_reply(429, "Resource has been exhausted (e.g. check quota).")
    fake_veo.script(quota, quota, quota)
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake_veo, http_attempts=3).generate(request())
    assert (caught.value.reason, caught.value.retryable) == ("HTTP_429", True)
    assert "Resource has been exhausted" in str(caught.value) and "3 attempts" in str(caught.value)
    assert fake_veo.start_calls == 3 and not fake_veo.starts[-1].operation


def test_the_api_key_appears_in_no_error_and_no_repr(fake_veo):
    fake_veo.script(Filter(), Fail(), Never(), error_reply(500, f"internal: echoing {API_KEY}"))
    veo = generator(fake_veo, max_wait_s=0.1, http_attempts=1)
    texts = [repr(veo)]
    for _ in range(4):
        with pytest.raises(Exception) as caught:
            veo.generate(request())
        texts += [str(caught.value), repr(caught.value)]
    with pytest.raises(VideoGenerationError) as wrong_key:
        VeoVideoGenerator(api_key="AIza-wrong-SECRET", base_url=fake_veo.base_url).generate(request())
    assert wrong_key.value.reason == "HTTP_400" and "GEMINI_API_KEY" in str(wrong_key.value)
    texts += [str(wrong_key.value)]
    assert not [text for text in texts if "SECRET" in text]


def test_the_default_clip_goes_from_the_start_frame_to_the_end_frame():
    """Without a scripted clip the server renders the request's own frames, for end-to-end runs."""
    start, end = solid_png((640, 360), (220, 40, 40)), solid_png((640, 360), (40, 40, 220))
    with FakeVeo(polls_before_done=1) as fake:
        video = VeoVideoGenerator(api_key="k", base_url=fake.base_url, poll_interval_s=0.01).generate(
            request(start_png=start, end_png=end, duration_s=4)
        )
    assert (video.width, video.height, video.frame_count, video.duration_s) == (640, 360, 96, 4.0)
    with read_frames(video.mp4) as (_, frames):
        first, *_, last = frames
    assert np.abs(first.astype(int) - pixels(start)).mean() < 4
    assert np.abs(last.astype(int) - pixels(end)).mean() < 4


@pytest.mark.parametrize("asked, made", [(1, 4), (4, 4), (4.5, 6), (6, 6), (7.9, 8), (8, 8), (30, 8)])
def test_durations_round_up_to_a_length_veo_makes(asked, made):
    assert veo_seconds(asked) == made


def test_shapes_veo_does_not_make_and_missing_keys_fail_before_any_request(fake_veo):
    with pytest.raises(ValueError, match="16:9 or 9:16"):
        generator(fake_veo).generate(request(aspect_ratio="1:1"))
    with pytest.raises(ValueError, match="GEMINI_API_KEY"):
        VeoVideoGenerator(api_key=" ")
    assert not fake_veo.requests
