"""The project's Dagster resources, and the one function that builds them from the settings.

``briefs`` reads a campaign's brief (or the snapshot its run pinned); ``storage`` is where every output, the
generation cache, the ledger and the features live; ``image_model`` and ``video_model`` say which backend makes
images and clips. The definitions and the command line both call :func:`build_resources`, so a run started from
either sees the same resources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import dagster as dg

from adchain_assets.brief.model import BriefError, BriefProblem, LoadedBrief, campaign_id_problem, load_brief
from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL, problems_for
from adchain_assets.plan.estimate import estimate_plan
from adchain_assets.plan.plan import Plan, plan_campaign
from adchain_assets.plan.requests import Maker
from adchain_assets.providers.images.base import ImageGenerator
from adchain_assets.providers.video.base import VideoGenerator
from adchain_assets.settings import Settings
from adchain_assets.store.cache import GenerationCache
from adchain_assets.store.files import CampaignFiles
from adchain_assets.store.ledger import Ledger
from adchain_assets.store.snapshots import pin, pinned_for_run
from adchain_assets.store.state import read_state
from adchain_assets.vision.features import FeatureStore


class CampaignBriefs(dg.ConfigurableResource):
    """The folder of brief files; a campaign's brief is ``<data_dir>/briefs/<campaign>.yaml``."""

    data_dir: str
    max_scenes: int = 8
    storage_url: str = ""  # where snapshots are pinned; empty: the data folder
    default_budget_usd: Optional[float] = None  # ADCHAIN_BUDGET_USD: the budget of a brief without budget_usd

    @property
    def briefs_dir(self) -> Path:
        return Path(self.data_dir) / "briefs"

    @property
    def storage(self) -> str:
        return self.storage_url or self.data_dir

    def path_of(self, campaign: str) -> Path:
        """The campaign's brief file: ``<campaign>.yaml``, or ``<campaign>.yml`` when only that exists."""
        yaml_path = self.briefs_dir / f"{campaign}.yaml"
        yml_path = self.briefs_dir / f"{campaign}.yml"
        return yml_path if not yaml_path.exists() and yml_path.exists() else yaml_path

    def load(self, campaign: str) -> LoadedBrief:
        """The brief file as it is now."""
        problem = campaign_id_problem(campaign)
        if problem:
            raise BriefError([BriefProblem(campaign, "", problem)])
        return load_brief(self.path_of(campaign), max_scenes=self.max_scenes)

    def budget_of(self, loaded: LoadedBrief) -> Optional[float]:
        """The campaign's budget: the brief's ``budget_usd``, else ``ADCHAIN_BUDGET_USD``, else none (None)."""
        return loaded.brief.budget_usd if loaded.brief.budget_usd is not None else self.default_budget_usd

    def pin(self, loaded: LoadedBrief) -> str:
        """Snapshot ``loaded`` (see :mod:`adchain_assets.store.snapshots`); returns its sha256."""
        return pin(loaded, self.storage)

    def for_run(self, campaign: str, run_id: str, tags: Mapping[str, str]) -> LoadedBrief:
        """The brief a step of run ``run_id`` works from: the run's pinned snapshot."""
        return pinned_for_run(campaign, run_id, tags, lambda: self.load(campaign), self.storage, max_scenes=self.max_scenes)


class Storage(dg.ConfigurableResource):
    """Where outputs, the generation cache, the ledger and image features live: a folder or an fsspec URL."""

    url: str

    @property
    def files(self) -> CampaignFiles:
        return CampaignFiles(self.url)

    @property
    def cache(self) -> GenerationCache:
        return GenerationCache(str(self.files.base / "cache"))

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.url)

    @property
    def features(self) -> FeatureStore:
        return FeatureStore(self.files.base)


class ImageModel(dg.ConfigurableResource):
    """Which backend makes the images, and how patiently. ``api_key`` is given as ``EnvVar("GEMINI_API_KEY")``
    so it is never stored in run config or shown in the UI. ``timeout_s`` is per HTTP attempt;
    ``http_attempts`` covers 408/429/5xx and timeouts, ``no_image_attempts`` replies that came without an image."""

    backend: str = "preview"
    model: str = DEFAULT_IMAGE_MODEL
    api_key: Optional[str] = None
    base_url: Optional[str] = None
    timeout_s: float = 120.0
    http_attempts: int = 5
    no_image_attempts: int = 3
    initial_delay_s: float = 1.0  # the first wait between retries; they double up to 30 s

    def maker(self) -> Maker:
        """The backend and model ids the generator records (what request fingerprints name)."""
        if self.backend == "preview":
            from adchain_assets.providers.images.preview import PreviewGenerator

            return Maker(PreviewGenerator.backend, PreviewGenerator.model)
        return Maker(self.backend, self.model.removeprefix("models/"))

    def generator(self) -> ImageGenerator:
        if self.backend == "preview":
            from adchain_assets.providers.images.preview import PreviewGenerator

            return PreviewGenerator()
        if self.backend == "gemini":
            from adchain_assets.providers.images.gemini import GeminiGenerator

            return GeminiGenerator(
                api_key=self.api_key or "",
                model=self.model,
                base_url=self.base_url or None,
                timeout_s=self.timeout_s,
                http_attempts=self.http_attempts,
                no_image_attempts=self.no_image_attempts,
                initial_delay_s=self.initial_delay_s,
            )
        raise ValueError(f"unknown image backend {self.backend!r}: use preview or gemini")


class VideoModel(dg.ConfigurableResource):
    """Which backend turns a scene's start and end frames into its clip (``preview`` offline, or ``veo``)."""

    backend: str = "preview"
    model: str = DEFAULT_VIDEO_MODEL
    api_key: Optional[str] = None
    base_url: Optional[str] = None
    poll_interval_s: float = 10.0
    max_wait_s: float = 600.0
    initial_delay_s: float = 1.0  # the first wait between retries of a request; they double up to 30 s
    route: str = "gemini"  # ADCHAIN_VIDEO_ROUTE: gemini (GEMINI_API_KEY) or vertex (project, location, ADC)
    project: Optional[str] = None
    location: Optional[str] = None

    def maker(self) -> Maker:
        if self.backend == "preview":
            from adchain_assets.providers.video.preview import PreviewVideoGenerator

            return Maker(PreviewVideoGenerator.backend, PreviewVideoGenerator.model)
        return Maker(self.backend, self.model.removeprefix("models/"))

    def generator(self) -> VideoGenerator:
        if self.backend == "preview":
            from adchain_assets.providers.video.preview import PreviewVideoGenerator

            return PreviewVideoGenerator()
        if self.backend == "veo":
            from adchain_assets.providers.video.veo import VeoVideoGenerator

            return VeoVideoGenerator(
                api_key=self.api_key or "",
                model=self.model,
                route=self.route,
                base_url=self.base_url or None,
                project=self.project,
                location=self.location,
                poll_interval_s=self.poll_interval_s,
                max_wait_s=self.max_wait_s,
                initial_delay_s=self.initial_delay_s,
            )
        raise ValueError(f"unknown video backend {self.backend!r}: use preview or veo")


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource of the project, from ``settings`` (the definitions' and the command line's alike).

    The key is passed as ``EnvVar("GEMINI_API_KEY")`` when it is set, so the UI shows the variable's name."""
    from adchain_assets.defs.io_manager import CampaignImageStorage

    key = dg.EnvVar("GEMINI_API_KEY") if settings.gemini_api_key else None
    storage = Storage(url=settings.storage_url)
    return {
        "briefs": CampaignBriefs(
            data_dir=settings.data_dir, max_scenes=settings.max_scenes, storage_url=settings.storage_url,
            default_budget_usd=settings.budget_usd,
        ),
        "storage": storage,
        "image_storage": CampaignImageStorage(storage=storage),
        "image_model": ImageModel(
            backend=settings.image_backend, model=settings.image_model, api_key=key,
            base_url=settings.gemini_base_url or None,
        ),
        "video_model": VideoModel(
            backend=settings.video_backend,
            model=settings.video_model,
            api_key=key,
            base_url=(settings.gemini_base_url if settings.video_route == "gemini" else settings.vertex_base_url) or None,
            route=settings.video_route,
            project=settings.cloud_project or None,
            location=settings.cloud_location,
        ),
    }


def model_problems(loaded: LoadedBrief, image_model: ImageModel, video_model: VideoModel) -> list[BriefProblem]:
    """What ``loaded`` asks that the configured models cannot make (an aspect ratio, a clip length, ...)."""
    return problems_for(
        loaded.brief,
        image_model.model if image_model.backend == "gemini" else None,
        video_model.model if video_model.backend == "veo" else None,
        file=str(loaded.path),
    )


def current_plan(loaded: LoadedBrief, storage: Storage, image_model: ImageModel, video_model: VideoModel,
                 budget_usd: Optional[float] = None) -> Plan:
    """The plan of ``loaded`` against what ``storage`` holds, for the configured models, priced
    (``plan.estimate``) under the campaign's budget ``budget_usd`` (:meth:`CampaignBriefs.budget_of`)."""
    stored = read_state(storage.files, storage.ledger, loaded)
    makers = {"image_maker": image_model.maker(), "video_maker": video_model.maker()}
    plan = plan_campaign(loaded, stored, **makers, budget_usd=budget_usd)
    plan.estimate = estimate_plan(plan, loaded, stored, **makers, cached=storage.cache.meta, budget_usd=budget_usd)
    return plan
