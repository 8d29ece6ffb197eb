"""The one small interface every image model sits behind.

A generator turns an :class:`ImageRequest` (prompt, ordered reference images, aspect ratio) into a
:class:`GeneratedImage` (PNG bytes plus who made it, what it used and what it cost). Adding a model is one
new module with one class that implements :meth:`ImageGenerator.generate`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from adchain_assets.prompts import ComposedPrompt


class GenerationError(Exception):
    """The model answered, but with no usable image (blocked, refused, malformed).

    ``reason`` is the model's own word for it (a finish reason such as ``IMAGE_SAFETY`` or a prompt block
    reason), so that messages and retries can be decided on it rather than on error text.
    """

    def __init__(self, message: str, reason: str = "UNKNOWN"):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ReferenceImage:
    """One image shown to the model, with the asset it came from (``reference/scene_1``)."""

    asset: str
    png: bytes


@dataclass(frozen=True)
class ImageRequest:
    prompt: ComposedPrompt
    references: Sequence[ReferenceImage]
    aspect_ratio: str


@dataclass(frozen=True)
class GeneratedImage:
    png: bytes
    backend: str
    model: str
    latency_s: float
    cost_usd: float
    usage: Mapping[str, int] = field(default_factory=dict)


class ImageGenerator(ABC):
    backend: str
    model: str

    @abstractmethod
    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Return one image for the request, or raise :class:`GenerationError`."""
