"""The environment the project reads (the CONTRACT's table), in one place.

The default models are current generally-available models from the catalogue (``catalogue.yaml``; ``adchain
models`` prints it): ``gemini-3.1-flash-image`` for images (Gemini API) and ``veo-3.1-fast-generate-001`` for clips.
``ADCHAIN_IMAGE_MODEL`` / ``ADCHAIN_VIDEO_MODEL`` change them; ``ADCHAIN_VIDEO_ROUTE`` picks how Veo is reached:
``gemini`` (the Gemini API's REST protocol, ``GEMINI_API_KEY``/``GEMINI_BASE_URL``) or ``vertex`` (Vertex AI through
google-genai, ``GOOGLE_CLOUD_PROJECT``/``GOOGLE_CLOUD_LOCATION`` and Application Default Credentials;
``ADCHAIN_VERTEX_BASE_URL`` points it at a proxy or a local protocol server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

DEFAULT_IMAGE_MODEL = "gemini-3.1-flash-image"
DEFAULT_VIDEO_MODEL = "veo-3.1-fast-generate-001"
DEFAULT_VERTEX_LOCATION = "us-central1"
VIDEO_ROUTES = ("gemini", "vertex")
DEFAULT_TEXT_MODEL = "gemini-3.5-flash"  # adchain draft's model (ADCHAIN_TEXT_MODEL)
IMAGE_BACKENDS = ("preview", "gemini")
VIDEO_BACKENDS = ("preview", "veo")


# Celery settings shared by the campaign executor (ADCHAIN_EXECUTOR=celery) and the workers' config module
# (deploy/celery/dagster_celery_config.py), so the two sides cannot drift apart:
CELERY_SETTINGS = {
    # a step that another step waits on is not left queued behind a worker's prefetched tasks
    "worker_prefetch_multiplier": 1,
    "task_track_started": True,
    # A task whose worker process dies (killed, out of memory) is put back on the queue and run again by another
    # process, instead of failing: dagster-celery's run worker stops submitting steps after a lost task and then
    # waits forever on the steps it never submitted, so a lost task must never be reported as a failure.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
}


class SettingsError(ValueError):
    """An environment variable of the project holds a value it cannot use."""


def celery_broker_and_backend(env: "Mapping[str, str] | None" = None) -> tuple[str, str]:
    """``ADCHAIN_CELERY_BROKER`` and ``ADCHAIN_CELERY_BACKEND`` (default: the broker), as the campaign executor
    and the Celery workers both read them."""
    env = os.environ if env is None else env
    broker = env.get("ADCHAIN_CELERY_BROKER", "").strip()
    if not broker:
        raise SettingsError("ADCHAIN_EXECUTOR=celery needs ADCHAIN_CELERY_BROKER (e.g. redis://host:6379/0)")
    return broker, env.get("ADCHAIN_CELERY_BACKEND", "").strip() or broker


def _seconds(name: str, default: float, env: "Mapping[str, str] | None" = None) -> float:
    raw = (os.environ if env is None else env).get(name, "").strip()
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
    video_route: str = "gemini"  # ADCHAIN_VIDEO_ROUTE: gemini | vertex
    cloud_project: str = ""  # GOOGLE_CLOUD_PROJECT (vertex route)
    cloud_location: str = DEFAULT_VERTEX_LOCATION  # GOOGLE_CLOUD_LOCATION (vertex route)
    vertex_base_url: str = ""  # ADCHAIN_VERTEX_BASE_URL (vertex route); empty: Google's

    @property
    def storage_url(self) -> str:
        """Where every output, the cache, the ledger and the brief snapshots live (a folder or an fsspec URL)."""
        return self.storage or self.data_dir

    @classmethod
    def from_env(cls, environ: "Mapping[str, str] | None" = None) -> "Settings":
        """The settings in ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        backend = env.get("ADCHAIN_IMAGE_BACKEND", "preview").strip() or "preview"
        if backend not in IMAGE_BACKENDS:
            raise SettingsError(f"ADCHAIN_IMAGE_BACKEND={backend!r}: use one of {', '.join(IMAGE_BACKENDS)}")
        video_backend = env.get("ADCHAIN_VIDEO_BACKEND", "preview").strip() or "preview"
        if video_backend not in VIDEO_BACKENDS:
            raise SettingsError(f"ADCHAIN_VIDEO_BACKEND={video_backend!r}: use one of {', '.join(VIDEO_BACKENDS)}")
        route = env.get("ADCHAIN_VIDEO_ROUTE", "gemini").strip().lower() or "gemini"
        if route not in VIDEO_ROUTES:
            raise SettingsError(f"ADCHAIN_VIDEO_ROUTE={route!r}: use one of {', '.join(VIDEO_ROUTES)}")
        raw_max = env.get("ADCHAIN_MAX_SCENES", "8")
        try:
            max_scenes = int(raw_max)
        except ValueError:
            max_scenes = 0
        if not 1 <= max_scenes <= 64:
            raise SettingsError(f"ADCHAIN_MAX_SCENES={raw_max!r}: must be a whole number from 1 to 64")
        return cls(
            data_dir=env.get("ADCHAIN_DATA_DIR", "data") or "data",
            image_backend=backend,
            image_model=env.get("ADCHAIN_IMAGE_MODEL", DEFAULT_IMAGE_MODEL) or DEFAULT_IMAGE_MODEL,
            max_scenes=max_scenes,
            video_backend=video_backend,
            video_model=env.get("ADCHAIN_VIDEO_MODEL", DEFAULT_VIDEO_MODEL) or DEFAULT_VIDEO_MODEL,
            storage=env.get("ADCHAIN_STORAGE_URL", "").strip(),
            step_retry_delay_s=_seconds("ADCHAIN_STEP_RETRY_DELAY_S", 20.0, env),
            video_route=route,
            cloud_project=env.get("GOOGLE_CLOUD_PROJECT", "").strip(),
            cloud_location=env.get("GOOGLE_CLOUD_LOCATION", "").strip() or DEFAULT_VERTEX_LOCATION,
            vertex_base_url=env.get("ADCHAIN_VERTEX_BASE_URL", "").strip(),
            text_model=env.get("ADCHAIN_TEXT_MODEL", "").strip() or DEFAULT_TEXT_MODEL,
        )
