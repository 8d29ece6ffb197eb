"""The environment the project reads, in one place: every variable, its default and what it means.

:data:`VARIABLES` is the table the README shows (a test keeps the two equal); :meth:`Settings.from_env` reads
them all, once, and turns a value the project cannot use into a :class:`SettingsError` naming the variable and
what is wrong. The Dagster definitions, the command line, the forkserver's preload and the Celery workers'
config module all read their settings through it; nothing else reads ``ADCHAIN_*`` or ``GEMINI_*``.

The default models are the catalogue's (``adchain models`` prints it); ``GEMINI_API_KEY`` is never stored in
run config: the resources name it as ``EnvVar("GEMINI_API_KEY")``, so the UI shows the name, not the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, NamedTuple, Optional

from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, DEFAULT_VIDEO_MODEL
from adchain_assets.providers.video.base import DEFAULT_VERTEX_LOCATION

IMAGE_BACKENDS = ("preview", "gemini")
VIDEO_BACKENDS = ("preview", "veo")
VIDEO_ROUTES = ("gemini", "vertex")
EXECUTORS = ("multiprocess", "celery")
MAX_BUDGET_USD = 1_000_000.0


class Variable(NamedTuple):
    name: str
    default: str  # as the README states it
    meaning: str


VARIABLES: tuple[Variable, ...] = (
    Variable("ADCHAIN_DATA_DIR", "`./data`", "root of `briefs/`, `campaigns/`, `cache/`"),
    Variable("ADCHAIN_STORAGE_URL", "the data folder",
             "where outputs, cache, ledger and brief snapshots live (a folder or `s3://…`)"),
    Variable("ADCHAIN_IMAGE_BACKEND", "`preview`", "`preview` (offline) or `gemini`"),
    Variable("ADCHAIN_IMAGE_MODEL", f"`{DEFAULT_IMAGE_MODEL}`", "Gemini image model"),
    Variable("ADCHAIN_VIDEO_BACKEND", "`preview`", "`preview` (offline) or `veo`"),
    Variable("ADCHAIN_VIDEO_MODEL", f"`{DEFAULT_VIDEO_MODEL}`", "Veo model"),
    Variable("ADCHAIN_VIDEO_ROUTE", "`gemini`", "`gemini` (Gemini API) or `vertex` (Vertex AI)"),
    Variable("ADCHAIN_TEXT_MODEL", f"`{DEFAULT_TEXT_MODEL}`", "Gemini text model of `adchain draft`"),
    Variable("GEMINI_API_KEY", "none", "key for `gemini`, `veo` on route `gemini`, and `draft`"),
    Variable("GEMINI_BASE_URL", "Google's", "Gemini API base URL (proxy, gateway, local test server)"),
    Variable("GOOGLE_CLOUD_PROJECT", "none", "Vertex AI project (route `vertex`)"),
    Variable("GOOGLE_CLOUD_LOCATION", f"`{DEFAULT_VERTEX_LOCATION}`", "Vertex AI region (route `vertex`)"),
    Variable("ADCHAIN_VERTEX_BASE_URL", "Google's", "Vertex AI base URL (proxy, local test server)"),
    Variable("ADCHAIN_MAX_SCENES", "`8`", "scene slots per chain in the asset graph (1 to 64)"),
    Variable("ADCHAIN_BUDGET_USD", "none", "budget of a campaign whose brief sets no `budget_usd` (USD, 0 or more)"),
    Variable("ADCHAIN_STEP_RETRY_DELAY_S", "`20`", "first wait before a step that failed on a transient fault is retried"),
    Variable("ADCHAIN_EXECUTOR", "`multiprocess`", "`multiprocess` (this machine) or `celery` (workers)"),
    Variable("ADCHAIN_CELERY_BROKER", "none", "Celery broker URL (executor `celery`)"),
    Variable("ADCHAIN_CELERY_BACKEND", "the broker", "Celery result backend URL (executor `celery`)"),
    Variable("ADCHAIN_WEBSERVER_URL", "none", "a webserver with a daemon: the CLI submits runs to its queue"),
    Variable("DAGSTER_HOME", "`.dagster_home/`", "Dagster instance folder"),
)

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


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value


def _number(env: Mapping[str, str], name: str, default: Optional[float], low: float, high: float, *, whole: bool = False,
            unit: str = "") -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise SettingsError(f"{name}={raw!r}: must be {kind}{unit} from {low:g} to {high:g}")
    return value


def _text(env: Mapping[str, str], name: str, default: str = "") -> str:
    return env.get(name, "").strip() or default


@dataclass(frozen=True)
class Settings:
    data_dir: str = "data"
    storage: str = ""  # ADCHAIN_STORAGE_URL; empty: the data folder
    image_backend: str = "preview"
    image_model: str = DEFAULT_IMAGE_MODEL
    video_backend: str = "preview"
    video_model: str = DEFAULT_VIDEO_MODEL
    video_route: str = "gemini"
    text_model: str = DEFAULT_TEXT_MODEL
    gemini_api_key: str = field(default="", repr=False)  # resources name it as EnvVar, never by value
    gemini_base_url: str = ""
    cloud_project: str = ""
    cloud_location: str = DEFAULT_VERTEX_LOCATION
    vertex_base_url: str = ""
    max_scenes: int = 8
    budget_usd: Optional[float] = None  # ADCHAIN_BUDGET_USD: the budget of briefs without their own
    step_retry_delay_s: float = 20.0
    executor: str = "multiprocess"
    celery_broker: str = ""
    celery_backend: str = ""
    webserver_url: str = ""

    @property
    def storage_url(self) -> str:
        """Where every output, the cache, the ledger and the brief snapshots live (a folder or an fsspec URL)."""
        return self.storage or self.data_dir

    @property
    def briefs_dir(self) -> Path:
        return Path(self.data_dir) / "briefs"

    def offline(self) -> "Settings":
        """These settings with the offline backends: what ``adchain demo`` runs with."""
        return replace(self, image_backend="preview", video_backend="preview")

    def models_in_use(self) -> tuple[Optional[str], Optional[str]]:
        """(image model, video model) of the backends in use; None for an offline (preview) backend."""
        image = self.image_model if self.image_backend == "gemini" else None
        video = self.video_model if self.video_backend == "veo" else None
        return image, video

    def celery_broker_and_backend(self) -> tuple[str, str]:
        """The broker and result backend the campaign executor and the Celery workers both use."""
        if not self.celery_broker:
            raise SettingsError("ADCHAIN_EXECUTOR=celery needs ADCHAIN_CELERY_BROKER (e.g. redis://host:6379/0)")
        return self.celery_broker, self.celery_backend or self.celery_broker

    @classmethod
    def from_env(cls, environ: "Mapping[str, str] | None" = None) -> "Settings":
        """The settings in ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        return cls(
            data_dir=_text(env, "ADCHAIN_DATA_DIR", "data"),
            storage=_text(env, "ADCHAIN_STORAGE_URL"),
            image_backend=_choice(env, "ADCHAIN_IMAGE_BACKEND", IMAGE_BACKENDS, "preview"),
            image_model=_text(env, "ADCHAIN_IMAGE_MODEL", DEFAULT_IMAGE_MODEL),
            video_backend=_choice(env, "ADCHAIN_VIDEO_BACKEND", VIDEO_BACKENDS, "preview"),
            video_model=_text(env, "ADCHAIN_VIDEO_MODEL", DEFAULT_VIDEO_MODEL),
            video_route=_choice(env, "ADCHAIN_VIDEO_ROUTE", VIDEO_ROUTES, "gemini"),
            text_model=_text(env, "ADCHAIN_TEXT_MODEL", DEFAULT_TEXT_MODEL),
            gemini_api_key=_text(env, "GEMINI_API_KEY"),
            gemini_base_url=_text(env, "GEMINI_BASE_URL"),
            cloud_project=_text(env, "GOOGLE_CLOUD_PROJECT"),
            cloud_location=_text(env, "GOOGLE_CLOUD_LOCATION", DEFAULT_VERTEX_LOCATION),
            vertex_base_url=_text(env, "ADCHAIN_VERTEX_BASE_URL"),
            max_scenes=int(_number(env, "ADCHAIN_MAX_SCENES", 8, 1, 64, whole=True)),
            budget_usd=_number(env, "ADCHAIN_BUDGET_USD", None, 0, MAX_BUDGET_USD, unit=" of USD"),
            step_retry_delay_s=_number(env, "ADCHAIN_STEP_RETRY_DELAY_S", 20.0, 0, 3600, unit=" of seconds"),
            executor=_choice(env, "ADCHAIN_EXECUTOR", EXECUTORS, "multiprocess"),
            celery_broker=_text(env, "ADCHAIN_CELERY_BROKER"),
            celery_backend=_text(env, "ADCHAIN_CELERY_BACKEND"),
            webserver_url=_text(env, "ADCHAIN_WEBSERVER_URL"),
        )
