"""The one small interface every image model sits behind.

A generator turns an :class:`ImageRequest` (prompt, ordered reference images, aspect ratio) into a
:class:`GeneratedImage` (PNG bytes plus who made it, what it used and what it cost). Adding a model is one
new module with one class that implements :meth:`ImageGenerator.generate`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from adchain_assets.plan.prompts import ComposedPrompt


class GenerationError(Exception):
    """No usable image: the model answered without one (blocked, refused, malformed), or could not be reached.

    ``reason`` is the model's own word for it (a finish reason such as ``IMAGE_SAFETY`` or a prompt block
    reason) or the generator's (``HTTP_503``, ``TIMEOUT``), so that messages and retries can be decided on it
    rather than on error text. ``retryable`` says whether the same request may well succeed later (a transient
    fault, after the generator's own retries ran out), so that a step-level retry policy can decide on it;
    final outcomes (a safety block, a rejected request) are ``False``. ``cost_usd`` and ``usage`` are what the
    failed call was billed for, if anything (a blocked prompt still bills its input tokens).
    """

    def __init__(
        self,
        message: str,
        reason: str = "UNKNOWN",
        *,
        retryable: bool = False,
        cost_usd: float = 0.0,
        usage: Mapping[str, int] | None = None,
    ):
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable
        self.cost_usd = cost_usd
        self.usage: Mapping[str, int] = dict(usage or {})


@dataclass(frozen=True)
class ReferenceImage:
    """One image shown to the model, with the asset it came from (``reference/scene_1``)."""

    asset: str
    png: bytes


@dataclass(frozen=True)
class ImageRequest:
    """``take`` counts new takes of the same request and ``candidate`` the takes of a best-of-N set: a
    sampling model answers anew anyway, while a deterministic renderer shows the numbers, so a new take is
    never silently the same picture."""

    prompt: ComposedPrompt
    references: Sequence[ReferenceImage]
    aspect_ratio: str
    take: int = 0
    candidate: int = 0  # which of a best-of-N set of takes


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
    draws_faces: bool = True  # False for a renderer whose characters are placeholders (nothing to score)

    @abstractmethod
    def generate(self, request: ImageRequest, meter=None) -> GeneratedImage:
        """Return one image for the request, or raise :class:`GenerationError`.

        A generator that calls a paid API calls ``meter`` (a :class:`adchain_assets.store.ledger.CallMeter`) once per
        reply, the moment it arrives, so the ledger holds every billed call whatever happens next."""


Meter = Callable[..., None]
"""What a generator calls once per billed reply (see :class:`adchain_assets.store.ledger.CallMeter`)."""
