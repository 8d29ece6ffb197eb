"""GeminiGenerator against a real local HTTP server speaking Gemini's REST protocol (no network beyond loopback)."""

from __future__ import annotations

import io
import random
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.genai import errors
from PIL import Image

from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL
from adchain_assets.providers.images.base import GenerationError
from adchain_assets.providers.images.gemini import GeminiGenerator
from adchain_assets_tests.gemini_server import (
    FakeGemini,
    Hang,
    Reply,
    blocked_prompt_reply,
    error_reply,
    image_reply,
    no_image_reply,
)
from adchain_assets_tests.helpers import image_request, prompt

API_KEY = "AIza-test-SECRET-4f2b9c"
PRICED_MODEL = "gemini-2.5-flash-image"


def noise_image(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    """Every pixel different, so any re-encoding or mix-up shows."""
    channels = len(mode)
    return Image.frombytes(mode, size, random.Random(seed).randbytes(size[0] * size[1] * channels))


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def same_pixels(a: bytes, b: bytes) -> bool:
    first, second = decode(a), decode(b)
    return (first.mode, first.size, first.tobytes()) == (second.mode, second.size, second.tobytes())


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server


@pytest.fixture
def generator(fake):
    # One call per image: these tests read one reply each; retrying is test_gemini_faults.py's subject.
    # Priced as gemini-2.5-flash-image (the catalogue keeps the prices of shut-down models for old records).
    return GeminiGenerator(api_key=API_KEY, model=PRICED_MODEL, base_url=fake.base_url, timeout_s=10,
                           no_image_attempts=1)


def test_request_carries_prompt_references_in_order_aspect_ratio_and_key(fake, generator):
    first = encode(noise_image((40, 30), seed=1))
    second = encode(noise_image((24, 24), seed=2, mode="RGBA"))
    req = image_request((first, second), aspect_ratio="9:16")

    result = generator.generate(req)

    [seen] = fake.requests
    assert seen.method == "POST"
    assert seen.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert seen.headers["x-goog-api-key"] == API_KEY
    [turn] = seen.body["contents"]
    assert turn["role"] == "user"
    assert turn["parts"][0] == {"text": req.prompt.text}
    assert seen.prompt_text == req.prompt.text
    assert seen.images == [first, second]
    assert same_pixels(seen.images[0], first) and same_pixels(seen.images[1], second)
    assert seen.image_mime_types == ["image/png", "image/png"]
    assert seen.aspect_ratio == "9:16"
    assert seen.response_modalities == ["IMAGE"]

    assert result.backend == "gemini"
    assert result.model == "gemini-2.5-flash-image"
    assert result.png == fake.returned_images[0]
    assert same_pixels(result.png, fake.returned_images[0])
    assert decode(result.png).size == (768, 1344)
    assert result.latency_s > 0


def test_without_references_only_the_prompt_is_sent(fake, generator):
    generator.generate(image_request())

    [seen] = fake.requests
    assert seen.body["contents"][0]["parts"] == [{"text": prompt().text}]
    assert seen.images == []


def test_default_reply_pixels_follow_prompt_and_references(fake, generator):
    ref_a, ref_b = encode(noise_image((8, 8), seed=3)), encode(noise_image((8, 8), seed=4))

    images = [
        generator.generate(image_request((ref_a,))).png,
        generator.generate(image_request((ref_a,))).png,
        generator.generate(image_request((ref_b,))).png,
        generator.generate(image_request((ref_a,), text="The bottle alone on the sill")).png,
    ]

    assert images[0] == images[1]
    assert len({images[0], images[2], images[3]}) == 3
    assert fake.returned_images == images


def test_concurrent_calls_are_all_recorded_and_answered_apart(fake, generator):
    texts = [f"Scene variant {i}" for i in range(6)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda text: generator.generate(image_request(text=text)), texts))

    assert sorted(r.prompt_text.split(": ", 1)[1].split("\n")[0] for r in fake.requests) == sorted(texts)
    assert len({r.png for r in results}) == 6
    assert sorted(fake.returned_images) == sorted(r.png for r in results)


def test_thought_parts_are_skipped_for_the_real_image(fake, generator):
    real = encode(noise_image((32, 32), seed=5))
    reply = image_reply(real, with_thought=True)
    thought_text, thought_image, _ = reply.body["candidates"][0]["content"]["parts"]
    assert thought_text["thought"] and thought_image["thought"] and "inlineData" in thought_image
    fake.reply(reply)

    result = generator.generate(image_request())

    assert result.png == real
    assert same_pixels(result.png, fake.returned_images[0])


def test_a_reply_with_only_a_thought_image_has_no_image(fake, generator):
    thought_only = image_reply(encode(noise_image((8, 8), seed=6)), with_thought=True)
    thought_only.body["candidates"][0]["content"]["parts"].pop()  # drop the real image
    fake.reply(thought_only)

    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())

    assert caught.value.reason == "STOP"


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_reply_is_stored_as_png_with_the_jpegs_decoded_pixels(fake, generator, mode):
    jpeg = encode(noise_image((64, 48), seed=7, mode=mode), "JPEG", quality=70)
    fake.reply(image_reply(jpeg, mime="image/jpeg"))

    result = generator.generate(image_request())

    stored, returned = decode(result.png), decode(jpeg)
    assert stored.format == "PNG"
    assert stored.mode == returned.mode == mode
    assert stored.size == returned.size
    assert stored.tobytes() == returned.tobytes()


def test_undecodable_image_bytes_are_a_generation_error(fake, generator):
    fake.reply(image_reply(b"definitely not an image", mime="image/png"))

    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())

    assert caught.value.reason == "UNREADABLE_IMAGE"


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"[1, 2]", b'{"candidates": "oops"}'])
def test_unreadable_reply_is_a_generation_error(fake, generator, body):
    fake.reply(Reply(200, body))

    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())

    assert caught.value.reason == "UNREADABLE_REPLY"


def test_finish_message_is_read_from_the_raw_reply(fake, generator):
    # The shape the live API sends (googleapis/python-genai#2049): empty content, and the SDK's own objects
    # drop finishMessage, which is the only explanation the model gives.
    fake.reply(
        {
            "candidates": [
                {
                    "content": {},
                    "finishReason": "IMAGE_OTHER",
                    "finishMessage": "Unable to show the generated image. The model could not generate the image.",
                }
            ]
        }
    )

    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())

    assert caught.value.reason == "IMAGE_OTHER"
    assert str(caught.value) == (
        "Gemini returned no image: finish reason IMAGE_OTHER"
        " (Unable to show the generated image. The model could not generate the image.)"
    )


@pytest.mark.parametrize(
    ("reply", "reason", "detail"),
    [
        (no_image_reply("IMAGE_SAFETY", message="The generated image was flagged."), "IMAGE_SAFETY", "flagged"),
        (no_image_reply("NO_IMAGE"), "NO_IMAGE", None),
        (no_image_reply("IMAGE_OTHER", message="Unable to show the image."), "IMAGE_OTHER", "Unable to show"),
        (no_image_reply("STOP", text="I can only describe this scene in words."), "STOP", "describe this scene"),
        (
            blocked_prompt_reply("PROHIBITED_CONTENT", message="The prompt violates policy."),
            "PROHIBITED_CONTENT",
            "violates policy",
        ),
        (blocked_prompt_reply("SAFETY"), "SAFETY", None),
        ({"usageMetadata": {"promptTokenCount": 10}}, "NO_CANDIDATES", None),
    ],
)
def test_no_image_is_a_generation_error_with_the_models_reason(fake, generator, reply, reason, detail):
    fake.reply(reply)

    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())

    assert caught.value.reason == reason
    assert reason in str(caught.value)
    if detail:
        assert detail in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_cost_from_usage_on_gemini_2_5_flash_image(fake, generator):
    fake.reply(image_reply(encode(noise_image((8, 8), seed=8)), prompt_tokens=1000))

    result = generator.generate(image_request())

    assert result.usage == {"prompt_tokens": 1000, "output_tokens": 1290, "total_tokens": 2290, "attempts": 1}
    assert result.cost_usd == pytest.approx(1000 * 0.30e-6 + 0.0387)


def test_cost_of_the_default_reply_is_one_image(fake, generator):
    result = generator.generate(image_request())

    assert result.usage["output_tokens"] == 1290
    assert result.cost_usd == pytest.approx(result.usage["prompt_tokens"] * 0.30e-6 + 0.0387)
    assert 0.0387 < result.cost_usd < 0.04


def test_pro_model_bills_thinking_tokens_at_the_text_rate_and_image_tokens_at_the_image_rate(fake):
    reply = image_reply(
        encode(noise_image((8, 8), seed=9)),
        prompt_tokens=500,
        output_tokens=1120,
        model_version="gemini-3-pro-image-preview",
    )
    reply.body["usageMetadata"].update(thoughtsTokenCount=200, totalTokenCount=1820)
    fake.reply(reply)
    generator = GeminiGenerator(api_key=API_KEY, model="gemini-3-pro-image-preview", base_url=fake.base_url)

    result = generator.generate(image_request())

    assert fake.requests[0].model == "gemini-3-pro-image-preview"
    assert result.model == "gemini-3-pro-image-preview"
    assert result.usage == {"prompt_tokens": 500, "output_tokens": 1320, "total_tokens": 1820, "attempts": 1}
    # input $2/M, image output $120/M, thinking (billed as text output) $12/M: the catalogue's prices
    assert result.cost_usd == pytest.approx(500 * 2e-6 + 1120 * 120e-6 + 200 * 12e-6)


def test_model_is_the_one_the_reply_names(fake, generator):
    fake.reply(image_reply(encode(noise_image((8, 8), seed=10)), model_version="gemini-2.5-flash-image-preview"))

    assert generator.generate(image_request()).model == "gemini-2.5-flash-image-preview"


def test_unknown_model_costs_nothing_but_usage_is_recorded(fake):
    generator = GeminiGenerator(api_key=API_KEY, model="some-future-image-model", base_url=fake.base_url)

    result = generator.generate(image_request())

    assert fake.requests[0].model == "some-future-image-model"
    assert result.model == "some-future-image-model"
    assert result.cost_usd == 0.0
    assert result.usage["output_tokens"] == 1290
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + 1290


def test_missing_usage_counts_are_zero(fake, generator):
    reply = image_reply(encode(noise_image((8, 8), seed=11)))
    del reply.body["usageMetadata"]
    fake.reply(reply)

    result = generator.generate(image_request())

    assert result.usage == {"prompt_tokens": 0, "output_tokens": 0, "total_tokens": 0, "attempts": 1}
    assert result.cost_usd == 0.0


def test_latency_is_measured_around_the_call(fake, generator):
    fake.latency_s = 0.3

    assert generator.generate(image_request()).latency_s >= 0.3


@pytest.mark.parametrize("key", ["", "   "])
def test_empty_api_key_is_a_clear_error(key):
    with pytest.raises(ValueError, match="GEMINI_API_KEY is not set") as caught:
        GeminiGenerator(api_key=key)

    assert "ADCHAIN_IMAGE_BACKEND=preview" in str(caught.value)


def test_api_key_is_not_in_the_repr():
    generator = GeminiGenerator(api_key=API_KEY, base_url="http://127.0.0.1:1")

    assert API_KEY not in repr(generator)
    assert DEFAULT_IMAGE_MODEL in repr(generator)  # the catalogue's default when none is given


def test_rejected_key_is_a_final_generation_error_without_the_key():
    wrong_key = "AIza-wrong-SECRET-77aa01"
    with FakeGemini(api_key=API_KEY) as server:
        generator = GeminiGenerator(api_key=wrong_key, base_url=server.base_url)

        with pytest.raises(GenerationError) as caught:
            generator.generate(image_request())

        assert len(server.requests) == 1

    assert caught.value.reason == "HTTP_400" and caught.value.retryable is False
    assert isinstance(caught.value.__cause__, errors.ClientError)  # the SDK's own error, kept as the cause
    assert caught.value.__cause__.code == 400
    assert caught.value.__cause__.status == "INVALID_ARGUMENT"
    text = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert "API key not valid" in str(caught.value)
    assert wrong_key not in text


@pytest.mark.parametrize(
    ("status", "error_class"), [(429, errors.ClientError), (503, errors.ServerError), (500, errors.ServerError)]
)
def test_http_attempts_1_makes_exactly_one_request(fake, status, error_class):
    generator = GeminiGenerator(api_key=API_KEY, base_url=fake.base_url, timeout_s=10, http_attempts=1)
    fake.reply(error_reply(status, "Try again later."))

    with pytest.raises(GenerationError) as caught:
        generator.generate(image_request())

    assert caught.value.reason == f"HTTP_{status}" and caught.value.retryable is True
    assert isinstance(caught.value.__cause__, error_class)
    assert caught.value.__cause__.code == status
    assert "Try again later." in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert len(fake.requests) == 1


def test_timeout_is_applied(fake):
    generator = GeminiGenerator(api_key=API_KEY, base_url=fake.base_url, timeout_s=0.5, http_attempts=1)
    fake.reply(Hang(10))

    started = time.perf_counter()
    with pytest.raises(Exception, match="(?i)timed? ?out") as caught:
        generator.generate(image_request())

    assert time.perf_counter() - started < 5
    assert caught.value.reason == "TIMEOUT"
    assert len(fake.requests) == 1
    assert API_KEY not in str(caught.value)
    assert fake.requests[0].headers["x-server-timeout"] == "1"
