"""Veo's faults against the local protocol server, counting the start calls (the paid ones) it saw.

Every test drives the real client code (httpx2 on the Gemini route, google-genai on the Vertex route) over HTTP;
nothing is mocked. The operation store is the real one (:class:`OperationSlot` under a temporary cache folder, or
the cache itself), so "never paid twice" is checked end to end: one start call per clip, whatever fails after it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from google.oauth2.credentials import Credentials
from PIL import Image

from adchain_assets.media.mp4 import probe
from adchain_assets.providers.video.base import VideoGenerationError, VideoRequest
from adchain_assets.providers.video.veo import VeoVideoGenerator
from adchain_assets.store.cache import GenerationCache, OperationSlot
from adchain_assets.store.ledger import CallMeter, Ledger
from adchain_assets_tests.gemini_server import Reply, error_reply
from adchain_assets_tests.veo_server import Fail, FakeVeo, Filter, Finish

API_KEY = "AIza-veo-faults-SECRET-51c0"
CURRENT = "veo-3.1-fast-generate-001"
RETIRED = "veo-3.1-fast-generate-preview"
KEY = "ab" + "0" * 62  # a request fingerprint


def noise_png(size: tuple[int, int], seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def request(**changes) -> VideoRequest:
    fields = {
        "prompt": "The bottle turns toward the light", "start_png": noise_png((48, 27), 1),
        "end_png": noise_png((48, 27), 2), "aspect_ratio": "16:9", "duration_s": 4.0, "resolution": "720p",
        "audio": True, **changes,
    }
    return VideoRequest(**fields)


def generator(fake: FakeVeo, **options) -> VeoVideoGenerator:
    options = {"api_key": API_KEY, "model": CURRENT, "base_url": fake.base_url, "poll_interval_s": 0.01,
               "max_wait_s": 10.0, "timeout_s": 5.0, "initial_delay_s": 0.01, "max_delay_s": 0.05, **options}
    return VeoVideoGenerator(**options)


@pytest.fixture
def fake():
    with FakeVeo(api_key=API_KEY, models={CURRENT, "veo-3.1-generate-001"}) as server:
        yield server


@pytest.fixture
def slot(tmp_path) -> OperationSlot:
    return OperationSlot(str(tmp_path / "cache"), KEY)


def test_a_retired_model_fails_fast_naming_the_model_and_the_variable(fake, slot, tmp_path):
    ledger = Ledger(str(tmp_path))
    meter = CallMeter(ledger, "camp", "clip/scene_1", KEY)
    started = time.perf_counter()
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake, model=RETIRED, http_attempts=5).generate(request(), meter=meter, resume=slot)
    elapsed = time.perf_counter() - started

    message = str(caught.value)
    assert caught.value.reason == "MODEL_NOT_FOUND" and not caught.value.retryable
    assert RETIRED in message and "ADCHAIN_VIDEO_MODEL" in message and "HTTP 404" in message
    assert fake.start_calls == 1  # no retries
    assert elapsed < 1.0
    assert slot.load() is None
    (call,) = ledger.calls("camp")
    assert (call.outcome, call.final, call.usage) == ("MODEL_NOT_FOUND", True, {})


def test_a_503_on_the_first_poll_then_success_is_one_start_call(fake, slot):
    fake.fail_polls(error_reply(503, "The service is currently unavailable."))
    video = generator(fake).generate(request(), resume=slot)

    assert fake.start_calls == 1
    operation = fake.starts[0].operation
    assert fake.polls(operation) == 1  # the 503 never reached the operation; the next poll found it done
    statuses = [r.status for r in fake.requests if r.path.split("?")[0] == f"/v1beta/{operation}"]
    assert statuses == [503, 200]
    assert probe(video.mp4).frame_count == 96
    assert slot.load()["operation"] == operation and slot.load()["billed"] is True


def test_polls_keep_going_through_transient_errors_until_done(fake, slot):
    fake.script(Finish(polls=2))
    fake.fail_polls(error_reply(500, "internal"), error_reply(429, "slow down"), error_reply(504, "deadline"))
    generator(fake).generate(request(), resume=slot)
    assert fake.start_calls == 1


def test_a_download_error_then_success_is_one_start_call(fake, slot):
    fake.fail_downloads(error_reply(503, "Backend unavailable."))
    video = generator(fake).generate(request(), resume=slot)

    assert fake.start_calls == 1
    downloads = [r.status for r in fake.requests if ":download" in r.path]
    assert downloads == [503, 302]
    assert probe(video.mp4).frame_count == 96


def test_a_download_that_keeps_failing_is_retryable_and_the_retry_downloads_the_same_operation(fake, slot, tmp_path):
    ledger = Ledger(str(tmp_path))
    meter = CallMeter(ledger, "camp", "clip/scene_1", KEY)
    fake.fail_downloads(*[error_reply(502, "Bad gateway")] * 2)
    veo = generator(fake, http_attempts=2)
    with pytest.raises(VideoGenerationError) as caught:
        veo.generate(request(), meter=meter, resume=slot)
    assert caught.value.retryable and caught.value.reason == "HTTP_502"

    video = generator(fake, http_attempts=2).generate(request(), meter=meter, resume=slot)  # the step's retry
    assert fake.start_calls == 1
    assert probe(video.mp4).frame_count == 96
    billed = [call for call in ledger.calls("camp") if call.usage]
    assert len(billed) == 1 and billed[0].usage == {"seconds": 4, "resolution": "720p"}  # paid once, recorded once


def test_a_poll_deadline_is_retryable_and_a_rerun_resumes_the_operation(fake, slot):
    fake.script(Finish(polls=1000))
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake, max_wait_s=0.3).generate(request(), resume=slot)
    assert (caught.value.reason, caught.value.retryable) == ("TIMEOUT", True)
    operation = fake.starts[0].operation
    assert operation in str(caught.value) and "starts no new one" in str(caught.value)
    assert slot.load()["operation"] == operation

    with fake._lock:  # the operation finishes meanwhile (test-only reach into the fake's own state)
        fake._operations[operation].outcome = Finish(polls=0)
    video = generator(fake).generate(request(), resume=slot)
    assert fake.start_calls == 1
    assert probe(video.mp4).frame_count == 96


@pytest.mark.fault
def test_a_killed_worker_is_resumed_by_the_next_one_with_no_second_start(fake, tmp_path):
    """A real process is SIGKILLed while it polls; a fresh generator (another worker) finishes the clip."""
    cache_root = tmp_path / "cache"
    fake.script(Finish(polls=100_000))
    frames = tmp_path / "frames.json"
    asked = request()
    frames.write_text(json.dumps({"start": asked.start_png.hex(), "end": asked.end_png.hex()}))
    script = textwrap.dedent(f"""
        import json
        from adchain_assets.providers.video.base import VideoRequest
        from adchain_assets.store.cache import OperationSlot
        from adchain_assets.providers.video.veo import VeoVideoGenerator
        frames = json.load(open({str(frames)!r}))
        request = VideoRequest(prompt={asked.prompt!r}, start_png=bytes.fromhex(frames["start"]),
                               end_png=bytes.fromhex(frames["end"]), aspect_ratio="16:9", duration_s=4.0)
        VeoVideoGenerator(api_key={API_KEY!r}, model={CURRENT!r}, base_url={fake.base_url!r}, poll_interval_s=0.05,
                          max_wait_s=600).generate(request, resume=OperationSlot({str(cache_root)!r}, {KEY!r}))
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    slot = OperationSlot(str(cache_root), KEY)
    try:
        deadline = time.monotonic() + 60
        while slot.load() is None or fake.polls(slot.load()["operation"]) < 3:
            assert worker.poll() is None, "the worker ended on its own"
            assert time.monotonic() < deadline, "the worker never started polling"
            time.sleep(0.05)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert worker.returncode == -signal.SIGKILL
    operation = slot.load()["operation"]
    with fake._lock:
        fake._operations[operation].outcome = Finish(polls=0)

    video = generator(fake).generate(asked, resume=slot)
    assert fake.start_calls == 1
    assert probe(video.mp4).frame_count == 96


def test_through_the_cache_a_retried_clip_resumes_its_operation(fake, tmp_path):
    cache = GenerationCache(root=str(tmp_path / "cache"))
    fake.fail_downloads(*[error_reply(503, "unavailable")] * 2)
    with pytest.raises(VideoGenerationError):
        cache.generate_video(generator(fake, http_attempts=2), request(), key=KEY)
    assert json.loads((tmp_path / "cache" / KEY[:2] / f"{KEY}.operation.json").read_text())["operation"]

    first = cache.generate_video(generator(fake, http_attempts=2), request(), key=KEY)
    again = cache.generate_video(generator(fake), request(), key=KEY)
    assert fake.start_calls == 1
    assert (first.cache_hit, again.cache_hit) == (False, True)
    assert again.video.mp4 == first.video.mp4


def test_a_failed_operation_is_final_with_its_status_and_clears_the_record(fake, slot):
    fake.script(Fail(code=3, message="Unsupported last frame size."), Finish())
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake).generate(request(), resume=slot)
    assert (caught.value.reason, caught.value.retryable) == ("INVALID_ARGUMENT", False)
    assert "Unsupported last frame size." in str(caught.value)
    assert slot.load() is None  # nothing billed, nothing to resume: an explicit retry starts afresh
    generator(fake).generate(request(), resume=slot)
    assert fake.start_calls == 2


def test_a_service_fault_in_the_operation_is_retryable_not_held_and_not_billed(fake, slot, tmp_path):
    ledger = Ledger(str(tmp_path))
    meter = CallMeter(ledger, "camp", "clip/scene_1", KEY)
    fake.script(Fail(code=13, message="Video generation failed due to an internal error."))
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake).generate(request(), meter=meter, resume=slot)
    assert (caught.value.reason, caught.value.retryable) == ("INTERNAL", True)
    assert slot.load() is None
    (call,) = ledger.calls("camp")
    assert (call.outcome, call.final, call.usage) == ("INTERNAL", False, {})
    generator(fake).generate(request(), meter=meter, resume=slot)  # the retry: a new operation, the first was not billed
    assert fake.start_calls == 2
    assert [c.usage for c in ledger.calls("camp") if c.usage] == [{"seconds": 4, "resolution": "720p"}]


def test_a_filtered_clip_is_final_with_veos_reasons(fake, slot):
    fake.script(Filter(reasons=("Support codes: 58061214",), polls=1))
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake).generate(request(), resume=slot)
    assert caught.value.reason == "RAI_FILTERED" and "58061214" in str(caught.value)
    assert not caught.value.retryable and fake.start_calls == 1


def test_a_start_that_times_out_after_sending_is_not_repeated(served_timeout_fake, slot):
    fake = served_timeout_fake
    with pytest.raises(VideoGenerationError) as caught:
        generator(fake, timeout_s=0.3, http_attempts=5).generate(request(), resume=slot)
    assert caught.value.reason == "START_TIMEOUT" and not caught.value.retryable
    assert "could pay twice" in str(caught.value)
    assert fake.start_calls == 1


@pytest.fixture
def served_timeout_fake():
    class SlowStart(FakeVeo):
        def _start(self, *args, **kwargs):
            reply = super()._start(*args, **kwargs)
            time.sleep(1.0)  # longer than the client's timeout: the operation exists, its name never arrives
            return reply

    with SlowStart(api_key=API_KEY) as server:
        yield server


def test_the_key_is_not_sent_to_another_host_on_a_redirect(fake, slot):
    with FakeVeo() as elsewhere:
        clip = request()
        # The fake's own clip, served from another origin through a redirect from the download URL.
        from adchain_assets.providers.video.preview import PreviewVideoGenerator

        elsewhere.files["blob1"] = PreviewVideoGenerator().generate(clip).mp4
        fake.fail_downloads(Reply(302, b"", {"Location": f"{elsewhere.base_url}/media/blob1.mp4"}))
        video = generator(fake).generate(clip, resume=slot)
        (media,) = [r for r in elsewhere.requests if r.path.startswith("/media/")]
    assert "x-goog-api-key" not in media.headers
    assert video.mp4 == elsewhere.files["blob1"]
    assert all(r.headers.get("x-goog-api-key") == API_KEY for r in fake.requests)


def test_the_vertex_route_sends_the_documented_request_through_the_sdk(fake, slot, tmp_path):
    fake.bearer_token = "ya29.test-token"
    asked = request(aspect_ratio="9:16", resolution="1080p", duration_s=8, audio=False, end_png=noise_png((27, 48), 3),
                    start_png=noise_png((27, 48), 4))
    veo = VeoVideoGenerator(
        route="vertex", model="veo-3.1-generate-001", project="adchain-test", location="europe-west4",
        base_url=fake.base_url, credentials=Credentials(token="ya29.test-token"), poll_interval_s=0.01,
        max_wait_s=10.0, timeout_s=5.0, initial_delay_s=0.01,
    )
    fake.fail_polls(error_reply(503, "unavailable"))
    video = veo.generate(asked, resume=slot)

    assert fake.start_calls == 1
    (start,) = fake.starts
    assert start.route == "vertex" and start.api_version == "v1beta1"
    assert start.headers["authorization"] == "Bearer ya29.test-token"
    assert "x-goog-api-key" not in start.headers
    assert start.parameters == {
        "aspectRatio": "9:16", "durationSeconds": 8, "resolution": "1080p", "sampleCount": 1, "generateAudio": False,
    }
    assert start.prompt == asked.prompt
    assert np.array_equal(pixels(start.image), pixels(asked.start_png))
    assert np.array_equal(pixels(start.last_frame), pixels(asked.end_png))
    assert start.image_mime_type == start.last_frame_mime_type == "image/png"
    posts = [(r.method, r.path) for r in fake.requests]
    model_path = "/v1beta1/projects/adchain-test/locations/europe-west4/publishers/google/models/veo-3.1-generate-001"
    assert posts[0] == ("POST", f"{model_path}:predictLongRunning")
    assert set(posts[1:]) == {("POST", f"{model_path}:fetchPredictOperation")}
    assert slot.load()["route"] == "vertex" and slot.load()["operation"].startswith("projects/adchain-test/")
    assert (video.width, video.height) == (360, 640)  # the preview stand-in's 9:16 frame, inline from the response


def test_the_vertex_route_reports_a_retired_model_with_the_variable(fake, slot):
    veo = VeoVideoGenerator(route="vertex", model=RETIRED, project="p", location="us-central1",
                            base_url=fake.base_url, credentials=Credentials(token="t"), initial_delay_s=0.01)
    with pytest.raises(VideoGenerationError) as caught:
        veo.generate(request(), resume=slot)
    assert caught.value.reason == "MODEL_NOT_FOUND" and "ADCHAIN_VIDEO_MODEL" in str(caught.value)
    assert fake.start_calls == 1


def test_settings_for_the_vertex_route_are_checked_before_any_call():
    with pytest.raises(ValueError, match="GOOGLE_CLOUD_PROJECT"):
        VeoVideoGenerator(route="vertex", project="")
    with pytest.raises(ValueError, match="ADCHAIN_VIDEO_ROUTE"):
        VeoVideoGenerator(route="aws", api_key="k")


def test_a_stored_operation_the_endpoint_no_longer_knows_is_replaced_once(fake, slot):
    slot.save({"operation": f"models/{CURRENT}/operations/expired1", "backend": "veo", "model": CURRENT,
               "route": "gemini", "started_at": "2026-11-01T00:00:00+00:00"})
    video = generator(fake).generate(request(), resume=slot)
    assert fake.start_calls == 1
    assert slot.load()["operation"] == fake.starts[0].operation != f"models/{CURRENT}/operations/expired1"
    assert probe(video.mp4).frame_count == 96


def test_a_stored_operation_of_another_model_is_not_resumed(fake, slot):
    slot.save({"operation": "models/veo-3.1-generate-001/operations/op999999", "backend": "veo",
               "model": "veo-3.1-generate-001", "route": "gemini"})
    generator(fake).generate(request(), resume=slot)
    assert fake.start_calls == 1 and fake.starts[0].model == CURRENT
