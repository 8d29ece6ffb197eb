"""The generation cache: same request, same image, no model call; durable, shared and never half-written."""

import io
import multiprocessing
import time
from pathlib import Path

import pytest
from PIL import Image

from adchain_assets.plan.prompts import ComposedPrompt
from adchain_assets.plan.references import Slot
from adchain_assets.providers.images.base import GeneratedImage, ImageGenerator, ImageRequest, ReferenceImage
from adchain_assets.providers.images.preview import PreviewGenerator
from adchain_assets.store.cache import GenerationCache, request_key


def png(colour, fmt_kwargs=None) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG", **(fmt_kwargs or {}))
    return buffer.getvalue()


def request(text="a bottle", references=(), aspect_ratio="1:1", take=0) -> ImageRequest:
    prompt = ComposedPrompt(Slot("reference", 2), text, (), (), "", "")
    return ImageRequest(prompt, [ReferenceImage(f"reference/scene_{i}", p) for i, p in enumerate(references, 1)], aspect_ratio, take)


class CountingGenerator(ImageGenerator):
    """Counts calls in a file, so that calls from several processes add up."""

    backend, model = "counting", "counting-1"

    def __init__(self, counter: Path, delay_s: float = 0.0):
        self.counter, self.delay_s = counter, delay_s

    def generate(self, req):
        with open(self.counter, "a") as calls:
            calls.write("x")
        time.sleep(self.delay_s)
        return GeneratedImage(png(( len(req.prompt.text) % 255, 1, 2)), self.backend, self.model, 0.5, 0.039)


def calls(counter: Path) -> int:
    return len(counter.read_text()) if counter.exists() else 0


def test_an_identical_request_is_answered_from_the_cache(tmp_path):
    counter = tmp_path / "calls"
    cache = GenerationCache(root=str(tmp_path / "cache"))
    first = cache.generate(CountingGenerator(counter), request())
    second = GenerationCache(root=str(tmp_path / "cache")).generate(CountingGenerator(counter), request())
    assert calls(counter) == 1
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.image.png == first.image.png
    assert (second.image.cost_usd, second.image.latency_s) == (0.0, 0.0)
    assert (second.image.backend, second.image.model) == ("counting", "counting-1")


def test_every_part_of_the_request_is_in_the_key():
    base = request(references=[png("red")])
    keys = {
        request_key("gemini", "m", base),
        request_key("preview", "m", base),
        request_key("gemini", "m2", base),
        request_key("gemini", "m", request(text="a bottle!", references=[png("red")])),
        request_key("gemini", "m", request(references=[png("red")], aspect_ratio="9:16")),
        request_key("gemini", "m", request(references=[png("blue")])),
        request_key("gemini", "m", request(references=[png("red"), png("red")])),
        request_key("gemini", "m", request(references=[png("red")], take=1)),
    }
    assert len(keys) == 8


def test_the_key_is_made_of_reference_pixels_not_file_bytes():
    plain, squeezed = png("red"), png("red", {"compress_level": 9, "optimize": True})
    assert plain != squeezed
    assert request_key("g", "m", request(references=[plain])) == request_key("g", "m", request(references=[squeezed]))


def test_a_damaged_or_unfinished_entry_is_never_served(tmp_path):
    counter = tmp_path / "calls"
    cache = GenerationCache(root=str(tmp_path / "cache"))
    made = cache.generate(CountingGenerator(counter), request())
    entry = tmp_path / "cache" / made.key[:2] / made.key
    (entry / "image.png").write_bytes(made.image.png[:20])  # truncated behind our back
    (entry.parent / f".{made.key}.leftover").mkdir()  # staging folder of a writer that was killed
    again = cache.generate(CountingGenerator(counter), request())
    assert again.cache_hit is False and calls(counter) == 2
    assert (entry / "image.png").read_bytes() == again.image.png


def _generate_in_process(root, counter):
    GenerationCache(root=root).generate(CountingGenerator(Path(counter), delay_s=0.5), request())


@pytest.mark.subprocess
def test_two_processes_asking_at_once_pay_once(tmp_path):
    counter = tmp_path / "calls"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_generate_in_process, args=(str(tmp_path / "cache"), str(counter))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert calls(counter) == 1


def test_preview_requests_hit_too(tmp_path):
    cache = GenerationCache(root=str(tmp_path / "cache"))
    first = cache.generate(PreviewGenerator(), request())
    assert cache.generate(PreviewGenerator(), request()).cache_hit
    assert not cache.generate(PreviewGenerator(), request(take=1)).cache_hit
    assert first.image.png == PreviewGenerator().generate(request()).png
