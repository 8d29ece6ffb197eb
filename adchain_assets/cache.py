"""The persistent generation cache: an identical request is never paid for twice.

The key is a hash of everything that decides the model's answer: backend, model, the full prompt, the
aspect ratio, the *pixels* of each reference image (not their file bytes, so a re-encoded PNG still hits) and
the take. Entries live under ``<data>/cache/`` and survive restarts. An entry is built in a temporary folder
and renamed into place, so a reader never sees half of one; a lock file per key makes a second process wait
for the first one's answer instead of paying for the same image again.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from dagster import ConfigurableResource
from PIL import Image

from adchain_assets.generators.base import GeneratedImage, ImageGenerator, ImageRequest

KEY_VERSION = 1


def pixel_digest(png: bytes) -> str:
    """sha256 of the decoded pixels (mode, size, raw bytes): the same picture gives the same digest."""
    with Image.open(io.BytesIO(png)) as image:
        digest = hashlib.sha256(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


def request_key(backend: str, model: str, request: ImageRequest) -> str:
    material = {
        "v": KEY_VERSION,
        "backend": backend,
        "model": model,
        "prompt": request.prompt.text,
        "aspect_ratio": request.aspect_ratio,
        "references": [pixel_digest(reference.png) for reference in request.references],
        "take": request.take,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Generation:
    """A model's answer and whether it came from the cache."""

    image: GeneratedImage
    cache_hit: bool
    key: str


class GenerationCache(ConfigurableResource):
    """Answers repeated requests from ``root`` (``<data>/cache``) instead of the model."""

    root: str

    def _entry(self, key: str) -> Path:
        return Path(self.root) / key[:2] / key

    def lookup(self, key: str) -> Optional[GeneratedImage]:
        entry = self._entry(key)
        try:
            meta = json.loads((entry / "meta.json").read_text())
            png = (entry / "image.png").read_bytes()
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if hashlib.sha256(png).hexdigest() != meta.get("sha256"):
            return None  # damaged on disk: treat as a miss, the next store replaces it
        return GeneratedImage(png=png, backend=meta["backend"], model=meta["model"], latency_s=0.0, cost_usd=0.0)

    def store(self, key: str, image: GeneratedImage) -> None:
        entry = self._entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=entry.parent))
        try:
            (staging / "image.png").write_bytes(image.png)
            meta = {
                "backend": image.backend, "model": image.model, "cost_usd": image.cost_usd,
                "latency_s": image.latency_s, "sha256": hashlib.sha256(image.png).hexdigest(),
            }
            (staging / "meta.json").write_text(json.dumps(meta))
            for name in ("image.png", "meta.json"):
                with open(staging / name, "rb") as written:
                    os.fsync(written.fileno())
            if entry.exists():
                shutil.rmtree(entry)  # a damaged entry (lookup refused it); a sound one is never replaced
            os.rename(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock_path = Path(self.root) / key[:2] / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def generate(self, generator: ImageGenerator, request: ImageRequest) -> Generation:
        """The cached answer to ``request``, or the model's, stored for next time."""
        key = request_key(generator.backend, generator.model, request)
        cached = self.lookup(key)
        if cached is not None:
            return Generation(cached, cache_hit=True, key=key)
        with self._locked(key):
            cached = self.lookup(key)  # another process may have made it while we waited
            if cached is not None:
                return Generation(cached, cache_hit=True, key=key)
            image = generator.generate(request)
            self.store(key, image)
            return Generation(image, cache_hit=False, key=key)
