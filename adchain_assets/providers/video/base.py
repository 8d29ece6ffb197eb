"""The one small interface every video model sits behind.

A generator turns a :class:`VideoRequest` (prompt, start frame, end frame, shape) into a :class:`GeneratedVideo`
(MP4 bytes plus what the clip is, who made it and what it cost). Adding a model is one new module with one
class that implements :meth:`VideoGenerator.generate`. The MP4 plumbing is :mod:`adchain_assets.media.mp4`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_VERTEX_LOCATION = "us-central1"  # Veo's region on the Vertex AI route when none is given

class VideoGenerationError(Exception):
    """The model answered, but with no usable clip (filtered, failed, never finished).

    ``reason`` is the model's own word for it (``RAI_FILTERED``, an operation's status such as
    ``INVALID_ARGUMENT``, or ``TIMEOUT``), so that messages and retries can be decided on it rather than on text.

    ``retryable`` is set when asking again may well succeed (a transient HTTP status that outlasted the retries, a
    poll deadline passed while the operation still runs): a retried step resumes the stored operation, it never
    starts a second one. A safety filter, an operation error and a retired model are final.
    """

    def __init__(self, message: str, reason: str = "UNKNOWN", retryable: bool = False):
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class VideoRequest:
    """A clip that starts on ``start_png`` and ends on ``end_png``; ``duration_s`` is a wish the model rounds."""

    prompt: str
    start_png: bytes
    end_png: bytes
    aspect_ratio: str
    duration_s: float = 4.0
    resolution: str = "720p"
    audio: bool = False


@dataclass(frozen=True)
class GeneratedVideo:
    """The clip as it came out: duration, size and frame count are measured from ``mp4``, not asked for."""

    mp4: bytes
    backend: str
    model: str
    duration_s: float
    width: int
    height: int
    frame_count: int
    fps: float
    latency_s: float
    cost_usd: float


class OperationRecord(Protocol):
    """Where a backend with long-running operations keeps the one it started for a request (the store's
    ``OperationSlot``), so that a retry or a rerun resumes it instead of paying for another."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, record: dict[str, Any]) -> None: ...

    def clear(self) -> None: ...


class VideoGenerator(ABC):
    backend: str
    model: str

    @abstractmethod
    def generate(self, request: VideoRequest, meter=None, resume: "OperationRecord | None" = None) -> GeneratedVideo:
        """Return one clip for the request, or raise :class:`VideoGenerationError`.

        ``meter`` records each billed reply in the ledger; ``resume`` (given by the cache, per request fingerprint)
        is where a backend with long-running operations keeps the operation it started, so that it is never paid
        for twice. Backends that make clips locally ignore both.
        """
