"""Dagster resources: where briefs come from, and which image model answers."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from dagster import ConfigurableResource

from adchain_assets.brief import LoadedBrief, campaign_id_problem, load_brief, BriefError, BriefProblem
from adchain_assets.generators.base import ImageGenerator
from adchain_assets.outputs import Maker
from adchain_assets.snapshots import pin, pinned_for_run
from adchain_assets.video.base import VideoGenerator
from adchain_assets.settings import DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL


class CampaignBriefs(ConfigurableResource):
    """The folder of brief files; a campaign's brief is ``<data_dir>/briefs/<campaign>.yaml``."""

    data_dir: str
    max_scenes: int = 8
    storage_url: str = ""  # where snapshots are pinned; empty: the data folder

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

    def pin(self, campaign: str) -> LoadedBrief:
        """Snapshot the brief as it is now (see :mod:`adchain_assets.snapshots`); the loaded brief carries its sha."""
        loaded = self.load(campaign)
        pin(loaded, self.storage)
        return loaded

    def for_run(self, campaign: str, run_id: str, tags: Mapping[str, str]) -> LoadedBrief:
        """The brief a step of run ``run_id`` works from: the run's pinned snapshot."""
        return pinned_for_run(campaign, run_id, tags, lambda: self.load(campaign), self.storage, max_scenes=self.max_scenes)


class ImageModel(ConfigurableResource):
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

    def maker(self) -> Maker:
        """The backend and model ids the generator records (what request fingerprints name)."""
        if self.backend == "preview":
            from adchain_assets.generators.preview import PreviewGenerator

            return Maker(PreviewGenerator.backend, PreviewGenerator.model)
        return Maker(self.backend, self.model.removeprefix("models/"))

    def generator(self) -> ImageGenerator:
        if self.backend == "preview":
            from adchain_assets.generators.preview import PreviewGenerator

            return PreviewGenerator()
        if self.backend == "gemini":
            from adchain_assets.generators.gemini import GeminiGenerator

            return GeminiGenerator(
                api_key=self.api_key or "",
                model=self.model,
                base_url=self.base_url or None,
                timeout_s=self.timeout_s,
                http_attempts=self.http_attempts,
                no_image_attempts=self.no_image_attempts,
            )
        raise ValueError(f"unknown image backend {self.backend!r}: use preview or gemini")


class VideoModel(ConfigurableResource):
    """Which backend turns a scene's start and end frames into its clip (``preview`` offline, or ``veo``)."""

    backend: str = "preview"
    model: str = DEFAULT_VIDEO_MODEL
    api_key: Optional[str] = None
    base_url: Optional[str] = None
    poll_interval_s: float = 10.0
    max_wait_s: float = 600.0
    route: str = "gemini"  # ADCHAIN_VIDEO_ROUTE: gemini (GEMINI_API_KEY) or vertex (project, location, ADC)
    project: Optional[str] = None
    location: Optional[str] = None

    def maker(self) -> Maker:
        if self.backend == "preview":
            from adchain_assets.video.preview import PreviewVideoGenerator

            return Maker(PreviewVideoGenerator.backend, PreviewVideoGenerator.model)
        return Maker(self.backend, self.model.removeprefix("models/"))

    def generator(self) -> VideoGenerator:
        if self.backend == "preview":
            from adchain_assets.video.preview import PreviewVideoGenerator

            return PreviewVideoGenerator()
        if self.backend == "veo":
            from adchain_assets.video.veo import VeoVideoGenerator

            return VeoVideoGenerator(
                api_key=self.api_key or "",
                model=self.model,
                route=self.route,
                base_url=self.base_url or None,
                project=self.project,
                location=self.location,
                poll_interval_s=self.poll_interval_s,
                max_wait_s=self.max_wait_s,
            )
        raise ValueError(f"unknown video backend {self.backend!r}: use preview or veo")
