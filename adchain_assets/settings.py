"""The environment the project reads (the CONTRACT's table), in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_IMAGE_MODEL = "gemini-2.5-flash-image"
DEFAULT_VIDEO_MODEL = "veo-3.1-fast-generate-preview"
DEFAULT_TEXT_MODEL = "gemini-2.5-flash"  # adchain draft's model (ADCHAIN_TEXT_MODEL)
IMAGE_BACKENDS = ("preview", "gemini")
VIDEO_BACKENDS = ("preview", "veo")


class SettingsError(ValueError):
    """An environment variable of the project holds a value it cannot use."""


def _seconds(name: str, default: float) -> float:
    raw = os.getenv(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise SettingsError(f"{name}={raw!r}: must be a number of seconds from 0 to 3600")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: str = "data"
    image_backend: str = "preview"
    image_model: str = DEFAULT_IMAGE_MODEL
    max_scenes: int = 8
    video_backend: str = "preview"
    video_model: str = DEFAULT_VIDEO_MODEL
    storage: str = ""  # ADCHAIN_STORAGE_URL; empty: the data folder
    text_model: str = DEFAULT_TEXT_MODEL  # ADCHAIN_TEXT_MODEL: adchain draft's model
    step_retry_delay_s: float = 20.0  # ADCHAIN_STEP_RETRY_DELAY_S: first wait before a failed step is retried

    @property
    def storage_url(self) -> str:
        """Where every output, the cache, the ledger and the brief snapshots live (a folder or an fsspec URL)."""
        return self.storage or self.data_dir

    @classmethod
    def from_env(cls) -> "Settings":
        backend = os.getenv("ADCHAIN_IMAGE_BACKEND", "preview").strip() or "preview"
        if backend not in IMAGE_BACKENDS:
            raise SettingsError(f"ADCHAIN_IMAGE_BACKEND={backend!r}: use one of {', '.join(IMAGE_BACKENDS)}")
        video_backend = os.getenv("ADCHAIN_VIDEO_BACKEND", "preview").strip() or "preview"
        if video_backend not in VIDEO_BACKENDS:
            raise SettingsError(f"ADCHAIN_VIDEO_BACKEND={video_backend!r}: use one of {', '.join(VIDEO_BACKENDS)}")
        raw_max = os.getenv("ADCHAIN_MAX_SCENES", "8")
        try:
            max_scenes = int(raw_max)
        except ValueError:
            max_scenes = 0
        if not 1 <= max_scenes <= 64:
            raise SettingsError(f"ADCHAIN_MAX_SCENES={raw_max!r}: must be a whole number from 1 to 64")
        return cls(
            data_dir=os.getenv("ADCHAIN_DATA_DIR", "data") or "data",
            image_backend=backend,
            image_model=os.getenv("ADCHAIN_IMAGE_MODEL", DEFAULT_IMAGE_MODEL) or DEFAULT_IMAGE_MODEL,
            max_scenes=max_scenes,
            video_backend=video_backend,
            video_model=os.getenv("ADCHAIN_VIDEO_MODEL", DEFAULT_VIDEO_MODEL) or DEFAULT_VIDEO_MODEL,
            storage=os.getenv("ADCHAIN_STORAGE_URL", "").strip(),
            text_model=os.getenv("ADCHAIN_TEXT_MODEL", "").strip() or DEFAULT_TEXT_MODEL,
            step_retry_delay_s=_seconds("ADCHAIN_STEP_RETRY_DELAY_S", 20.0),
        )
