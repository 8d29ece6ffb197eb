"""GeminiGenerator's fault handling against the local Gemini-protocol server: what is retried, how often, how
long it waits, what fails at once, what a retried call costs, and that the API key never leaks.

Delays are tiny (``initial_delay_s`` of tens of milliseconds) and timing assertions are no tighter than a
factor of about 2.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from itertools import pairwise

import pytest
from google.genai import errors

from adchain_assets.providers.images.base import GenerationError
from adchain_assets.providers.images.gemini import FINAL_REASONS, RETRYABLE_REASONS, GeminiGenerator
from adchain_assets_tests.gemini_server import (
    Drop,
    FakeGemini,
    Hang,
    Reply,
    blocked_prompt_reply,
    error_reply,
    image_reply,
    make_png,
    no_image_reply,
)

from .helpers import image_request

API_KEY = "AIzaSy-FAKE-KEY-adchain-test-0123456789"
DELAY = 0.02  # initial backoff (and jitter range) for most tests, in seconds
PNG = make_png(b"faults", (16, 16))
PROMPT_PRICE, OUTPUT_PRICE = 0.30e-6, 30e-6  # gemini-2.5-flash-image, USD per token


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server


def generator_for(base_url: str, **overrides) -> GeminiGenerator:
    """A generator with tiny delays: 4 HTTP attempts per call, 3 calls per image."""
    options = dict(timeout_s=5.0, http_attempts=4, initial_delay_s=DELAY, max_delay_s=1.0, no_image_attempts=3)
    return GeminiGenerator(api_key=API_KEY, base_url=base_url, **(options | overrides))


def forever(reply, count: int = 50) -> list:
    """Enough copies of ``reply`` that no test runs out of them."""
    return [reply] * count


def gaps(fake: FakeGemini) -> list[float]:
    """Seconds between consecutive requests, as the server saw them arrive."""
    return [b.received_at - a.received_at for a, b in pairwise(fake.requests)]


# --- HTTP level: the SDK's retries ------------------------------------------------------------------------------


def test_429_three_times_then_success_makes_four_requests_with_growing_waits(fake):
    fake.reply(*[error_reply(429, "Resource has been exhausted (e.g. check quota).")] * 3)
    generator = generator_for(fake.base_url, initial_delay_s=0.1, http_attempts=5)

    result = generator.generate(image_request())

    assert len(fake.requests) == 4
    assert result.png == fake.returned_images[0]
    assert [r.reply_status for r in fake.requests] == [429, 429, 429, 200]
    waits = gaps(fake)
    # initial * 2**n + uniform(0, initial): 0.1-0.2 s, 0.2-0.3 s, 0.4-0.5 s (plus the round trip).
    assert all(wait >= 0.1 for wait in waits)
    assert waits[2] > 1.5 * waits[0]
    assert waits[2] > waits[1]
    assert result.usage["attempts"] == 1  # one model call; its HTTP retries are not billed replies


def test_503_once_then_success(fake):
    fake.reply(error_reply(503, "The model is overloaded. Please try again later."))

    result = generator_for(fake.base_url).generate(image_request())

    assert [r.reply_status for r in fake.requests] == [503, 200]
    assert result.png == fake.returned_images[0]


def test_503_forever_fails_after_http_attempts_requests_as_retryable(fake):
    fake.reply(*forever(error_reply(503, "The model is overloaded. Please try again later.")))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url, http_attempts=3).generate(image_request())

    assert len(fake.requests) == 3  # not multiplied by reply-level retries: the SDK's are the ones for HTTP
    assert caught.value.reason == "HTTP_503"
    assert caught.value.retryable is True
    assert "503" in str(caught.value) and "3 attempts" in str(caught.value)
    assert "The model is overloaded" in str(caught.value)
    assert isinstance(caught.value.__cause__, errors.ServerError)
    assert caught.value.cost_usd == 0.0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 504])
def test_every_transient_status_is_retried(fake, status):
    fake.reply(error_reply(status, "transient"))

    generator_for(fake.base_url).generate(image_request())

    assert [r.reply_status for r in fake.requests] == [status, 200]


@pytest.mark.parametrize(("status", "name"), [(400, "INVALID_ARGUMENT"), (403, "PERMISSION_DENIED"), (404, None)])
def test_a_client_error_is_one_request_and_final_with_the_servers_message(fake, status, name):
    fake.reply(error_reply(status, "Request contains an invalid argument.", name))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url).generate(image_request())

    assert len(fake.requests) == 1
    assert caught.value.reason == f"HTTP_{status}"
    assert caught.value.retryable is False
    assert "Request contains an invalid argument." in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_retry_after_is_not_honoured_by_the_sdk_but_is_reported(fake):
    # The SDK's waits follow its own schedule only: a 30 s Retry-After does not slow these retries down.
    fake.reply(*forever(error_reply(429, "Quota exceeded.", retry_after=30, retry_delay="38s")))

    started = time.perf_counter()
    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url, http_attempts=2).generate(image_request())

    assert time.perf_counter() - started < 5
    assert len(fake.requests) == 2
    assert caught.value.reason == "HTTP_429" and caught.value.retryable
    assert "38s" in str(caught.value)  # Google's RetryInfo, preferred over the header


def test_retry_after_header_alone_is_reported(fake):
    fake.reply(error_reply(429, "Slow down.", retry_after=7))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url, http_attempts=1).generate(image_request())

    assert "wait 7s" in str(caught.value)


def test_a_hang_past_the_timeout_is_retried(fake):
    fake.reply(Hang(5))
    generator = generator_for(fake.base_url, timeout_s=0.3)

    started = time.perf_counter()
    result = generator.generate(image_request())

    assert time.perf_counter() - started < 3
    assert len(fake.requests) == 2
    assert result.png == fake.returned_images[0]


def test_a_call_that_always_hangs_is_a_retryable_timeout(fake):
    fake.latency_s = 5.0
    generator = generator_for(fake.base_url, timeout_s=0.3, http_attempts=3)

    started = time.perf_counter()
    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())

    elapsed = time.perf_counter() - started
    assert 0.9 <= elapsed < 3  # three 0.3 s timeouts and two short waits
    assert len(fake.requests) == 3
    assert caught.value.reason == "TIMEOUT"
    assert caught.value.retryable is True
    assert "0.3s" in str(caught.value) and "3 attempts" in str(caught.value)


def test_a_latency_callable_delays_only_the_requests_it_names(fake):
    fake.latency_s = lambda req: 5.0 if len(fake.requests) == 1 else 0.0
    generator = generator_for(fake.base_url, timeout_s=0.3)

    generator.generate(image_request())

    assert len(fake.requests) == 2


def test_a_refused_connection_is_retried_then_reported():
    with FakeGemini() as server:
        base_url = server.base_url  # a port that is closed once the server is
    generator = generator_for(base_url, http_attempts=2)

    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())

    assert caught.value.reason == "CONNECTION_FAILED"
    assert caught.value.retryable is True
    assert "2 attempts" in str(caught.value)


# --- Reply level: a 200 without an image ------------------------------------------------------------------------


def test_no_image_once_then_success_costs_both_calls(fake):
    fake.reply(no_image_reply("NO_IMAGE", prompt_tokens=100), image_reply(PNG, prompt_tokens=100))

    result = generator_for(fake.base_url).generate(image_request())

    assert len(fake.requests) == 2
    assert result.png == PNG
    assert result.usage == {"prompt_tokens": 200, "output_tokens": 1290, "total_tokens": 1490, "attempts": 2}
    assert result.cost_usd == pytest.approx(200 * PROMPT_PRICE + 1290 * OUTPUT_PRICE)


@pytest.mark.parametrize(
    "reply",
    [
        no_image_reply("OTHER"),
        no_image_reply("STOP", text="Here is a description of the scene instead."),
        no_image_reply("FINISH_REASON_UNSPECIFIED"),
        {"candidates": [{"content": {"parts": []}}]},  # no finish reason at all
        {"usageMetadata": {"promptTokenCount": 10}},  # NO_CANDIDATES
        image_reply(b"not an image"),  # UNREADABLE_IMAGE
    ],
)
def test_other_replies_without_an_image_are_retried(fake, reply):
    fake.reply(reply)

    result = generator_for(fake.base_url).generate(image_request())

    assert len(fake.requests) == 2
    assert result.usage["attempts"] == 2


def test_image_other_forever_fails_after_no_image_attempts_calls(fake):
    fake.reply(*forever(no_image_reply("IMAGE_OTHER", message="Unable to show the generated image.")))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url, no_image_attempts=3).generate(image_request())

    assert len(fake.requests) == 3
    assert caught.value.reason == "IMAGE_OTHER"
    assert caught.value.retryable is True
    assert "Unable to show the generated image." in str(caught.value)
    assert "after 3 calls" in str(caught.value)
    # Every failed reply was billed for its input: the error carries what the image cost without an image.
    assert caught.value.usage == {"prompt_tokens": 300, "output_tokens": 0, "total_tokens": 300, "attempts": 3}
    assert caught.value.cost_usd == pytest.approx(300 * PROMPT_PRICE)


def test_reply_level_backoff_grows_too(fake):
    fake.reply(*forever(no_image_reply("NO_IMAGE")))

    with pytest.raises(GenerationError):
        generator_for(fake.base_url, initial_delay_s=0.1, no_image_attempts=4).generate(image_request())

    waits = gaps(fake)
    assert len(waits) == 3
    assert all(wait >= 0.1 for wait in waits)
    assert waits[2] > 1.5 * waits[0]


def test_every_reply_level_attempt_gets_the_full_http_retries(fake):
    fake.reply(
        error_reply(503, "overloaded"), no_image_reply("NO_IMAGE"), error_reply(429, "quota"), image_reply(PNG)
    )

    result = generator_for(fake.base_url, http_attempts=2).generate(image_request())

    assert [r.reply_status for r in fake.requests] == [503, 200, 429, 200]
    assert result.png == PNG and result.usage["attempts"] == 2


@pytest.mark.parametrize(
    "reason", ["IMAGE_SAFETY", "SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII"]
)
def test_a_final_finish_reason_is_one_request(fake, reason):
    fake.reply(no_image_reply(reason, message="The generated image was flagged.", prompt_tokens=100))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url).generate(image_request())

    assert len(fake.requests) == 1
    assert caught.value.reason == reason
    assert caught.value.retryable is False
    assert reason in str(caught.value)
    assert caught.value.cost_usd == pytest.approx(100 * PROMPT_PRICE)


@pytest.mark.parametrize("reason", ["PROHIBITED_CONTENT", "SAFETY", "OTHER", "BLOCKLIST", "JAILBREAK"])
def test_a_prompt_block_is_one_request_whatever_its_reason(fake, reason):
    # OTHER as a *finish* reason is retried; as a prompt block reason it is final like any block.
    fake.reply(blocked_prompt_reply(reason, message="The prompt violates policy."))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url).generate(image_request())

    assert len(fake.requests) == 1
    assert caught.value.reason == reason
    assert caught.value.retryable is False
    assert "blocked the prompt" in str(caught.value) and "violates policy" in str(caught.value)


def test_an_unknown_finish_reason_is_final(fake):
    fake.reply(no_image_reply("SOME_FUTURE_REASON"))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url).generate(image_request())

    assert len(fake.requests) == 1
    assert caught.value.reason == "SOME_FUTURE_REASON" and caught.value.retryable is False


def test_a_malformed_200_once_then_success(fake):
    fake.reply(Reply(200, b"<html><body>upstream hiccup</body></html>"))

    result = generator_for(fake.base_url).generate(image_request())

    assert len(fake.requests) == 2
    assert result.png == fake.returned_images[0]
    assert result.usage["attempts"] == 2
    assert result.usage["prompt_tokens"] == len(fake.requests[1].prompt_text) // 4  # only the billed reply


def test_a_malformed_200_forever_is_unreadable_reply(fake):
    fake.reply(*forever(Reply(200, b"not json")))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url, no_image_attempts=2).generate(image_request())

    assert len(fake.requests) == 2
    assert caught.value.reason == "UNREADABLE_REPLY" and caught.value.retryable


def test_a_dropped_connection_is_retried_at_reply_level(fake):
    fake.reply(Drop())

    result = generator_for(fake.base_url).generate(image_request())

    assert len(fake.requests) == 2
    assert fake.requests[0].reply_status is None
    assert result.png == fake.returned_images[0]


def test_a_connection_dropped_every_time_fails_as_disconnected(fake):
    fake.reply(*forever(Drop()))

    with pytest.raises(GenerationError) as caught:
        generator_for(fake.base_url, no_image_attempts=2).generate(image_request())

    assert len(fake.requests) == 2
    assert caught.value.reason == "DISCONNECTED" and caught.value.retryable


def test_no_image_attempts_1_makes_one_call(fake):
    fake.reply(no_image_reply("NO_IMAGE"))

    with pytest.raises(GenerationError):
        generator_for(fake.base_url, no_image_attempts=1).generate(image_request())

    assert len(fake.requests) == 1


# --- Jitter and the reason sets ---------------------------------------------------------------------------------


def test_jitter_is_drawn_for_every_retry_at_both_levels_and_differs_between_runs(fake, monkeypatch):
    draws: list[tuple[float, float, float]] = []
    uniform = random.uniform

    def recording_uniform(a: float, b: float) -> float:
        value = uniform(a, b)
        draws.append((a, b, value))
        return value

    monkeypatch.setattr(random, "uniform", recording_uniform)  # tenacity and the generator both use it
    runs = []
    for _ in range(2):
        fake.requests.clear()
        draws.clear()
        fake.reply(error_reply(503, "overloaded"), error_reply(503, "overloaded"), no_image_reply("NO_IMAGE"))
        generator_for(fake.base_url).generate(image_request())
        assert len(fake.requests) == 4
        runs.append((list(draws), gaps(fake)))

    (draws_a, gaps_a), (draws_b, gaps_b) = runs
    assert len(draws_a) == len(draws_b) == 3  # two HTTP-level retries, one reply-level retry
    assert all((a, b) == (0, DELAY) and 0 <= value <= DELAY for a, b, value in draws_a + draws_b)
    assert [v for *_, v in draws_a] != [v for *_, v in draws_b]
    assert gaps_a != gaps_b


def test_backoff_schedule_doubles_with_jitter_and_is_capped():
    generator = GeminiGenerator(api_key=API_KEY, initial_delay_s=1.0, max_delay_s=30.0)

    for retry, low in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        waits = {generator._backoff_s(retry) for _ in range(50)}
        assert all(low <= wait <= low + 1.0 for wait in waits)
        assert len(waits) > 10  # jittered
    assert generator._backoff_s(10) == 30.0

    options = generator._http_options().retry_options
    assert (options.attempts, options.initial_delay, options.max_delay, options.exp_base, options.jitter) == (
        5, 1.0, 30.0, 2.0, 1.0,
    )
    assert options.http_status_codes == [408, 429, 500, 502, 503, 504]


def test_reason_sets_follow_the_contract():
    assert not FINAL_REASONS & RETRYABLE_REASONS
    assert {"NO_IMAGE", "IMAGE_OTHER", "OTHER", "STOP", "UNREADABLE_REPLY"} <= RETRYABLE_REASONS
    assert {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII"} <= (
        FINAL_REASONS
    )


@pytest.mark.parametrize(
    "options",
    [
        {"http_attempts": 0},
        {"no_image_attempts": 0},
        {"timeout_s": 0},
        {"initial_delay_s": -1},
    ],
)
def test_nonsense_settings_are_refused(options):
    with pytest.raises(ValueError):
        GeminiGenerator(api_key=API_KEY, **options)


# --- Secrets ----------------------------------------------------------------------------------------------------


def _exception_texts(error: BaseException) -> list[str]:
    """str, repr, args and attributes of the error and of every error chained to it, and the formatted traceback."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += [repr(value) for value in vars(current).values()]
        pending += [current.__cause__, current.__context__]
    return texts


def _echo_key(status: int):
    """A misbehaving proxy that quotes the request's key back in its error (and so in the SDK's retry log)."""

    def reply(req) -> Reply:
        return error_reply(status, f"Key {req.headers.get('x-goog-api-key')} is not allowed here.")

    return reply


def _fail(script) -> GenerationError:
    """The error of one generate() against a server set up by ``script`` (None: no server, connection refused)."""
    with FakeGemini() as server:
        if script is not None:
            script(server)
        generator = generator_for(server.base_url, timeout_s=0.3, http_attempts=2, no_image_attempts=2)
        if script is not None:
            with pytest.raises(GenerationError) as caught:
                generator.generate(image_request())
            assert server.requests and all(r.headers.get("x-goog-api-key") == API_KEY for r in server.requests)
            return caught.value
    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())  # the server is closed now: connection refused
    return caught.value


FAILURES = {
    "429 forever": lambda fake: fake.reply(*forever(error_reply(429, "Resource has been exhausted."))),
    "503 forever": lambda fake: fake.reply(*forever(error_reply(503, "The model is overloaded."))),
    "400": lambda fake: fake.reply(error_reply(400, "API key not valid. Please pass a valid API key.")),
    "400 echoing the key": lambda fake: fake.reply(_echo_key(400)),
    "429 echoing the key": lambda fake: fake.reply(*forever(_echo_key(429))),
    "hang": lambda fake: setattr(fake, "latency_s", 5.0),
    "dropped": lambda fake: fake.reply(*forever(Drop())),
    "malformed": lambda fake: fake.reply(*forever(Reply(200, b"<html>502</html>"))),
    "undecodable image": lambda fake: fake.reply(*forever(image_reply(b"garbage"))),
    "IMAGE_OTHER forever": lambda fake: fake.reply(*forever(no_image_reply("IMAGE_OTHER"))),
    "IMAGE_SAFETY": lambda fake: fake.reply(no_image_reply("IMAGE_SAFETY")),
    "prompt block": lambda fake: fake.reply(blocked_prompt_reply("PROHIBITED_CONTENT")),
    "refused": None,
}


def test_the_key_is_in_no_error_and_no_log_line(caplog):
    caplog.set_level(logging.DEBUG)  # the root: every logger, the SDK's and httpx2/httpcore2's included
    for name in ("google_genai", "httpx", "httpx2", "httpcore", "httpcore2", "adchain_assets"):
        caplog.set_level(logging.DEBUG, logger=name)

    reasons = {}
    for failure, script in FAILURES.items():
        error = _fail(script)
        reasons[failure] = error.reason
        for text in _exception_texts(error):
            assert API_KEY not in text, f"{failure}: the key is in {text!r}"

    assert reasons == {
        "429 forever": "HTTP_429",
        "503 forever": "HTTP_503",
        "400": "HTTP_400",
        "400 echoing the key": "HTTP_400",
        "429 echoing the key": "HTTP_429",
        "hang": "TIMEOUT",
        "dropped": "DISCONNECTED",
        "malformed": "UNREADABLE_REPLY",
        "undecodable image": "UNREADABLE_IMAGE",
        "IMAGE_OTHER forever": "IMAGE_OTHER",
        "IMAGE_SAFETY": "IMAGE_SAFETY",
        "prompt block": "PROHIBITED_CONTENT",
        "refused": "CONNECTION_FAILED",
    }
    loggers = {record.name.split(".")[0] for record in caplog.records}
    assert {"google_genai", "httpx2", "httpcore2", "adchain_assets"} <= loggers  # the capture was not vacuous
    for record in caplog.records:
        assert API_KEY not in record.getMessage(), record.name
    assert API_KEY not in caplog.text
