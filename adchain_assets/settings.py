"""The environment the project reads (the CONTRACT's table), in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_IMAGE_MODEL = "gemini-2.5-flash-image"
IMAGE_BACKENDS = ("preview", "gemini")


class SettingsError(ValueError):
    """An environment variable of the project holds a value it cannot use."""


@dataclass(frozen=True)
class Settings:
    data_dir: str = "data"
    image_backend: str = "preview"
    image_model: str = DEFAULT_IMAGE_MODEL
    max_scenes: int = 8

    @classmethod
    def from_env(cls) -> "Settings":
        backend = os.getenv("ADCHAIN_IMAGE_BACKEND", "preview").strip() or "preview"
        if backend not in IMAGE_BACKENDS:
            raise SettingsError(f"ADCHAIN_IMAGE_BACKEND={backend!r}: use one of {', '.join(IMAGE_BACKENDS)}")
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
        )
