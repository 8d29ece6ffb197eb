"""The project's Dagster definitions: the subject sheets, three chains of images, their clips and the ad, the review
outputs (the storyboard sheet and PDF, the report), the deliverables, every placement's frames, clips, ad and
storyboard, the resources that make and store them, the campaign and placements jobs and the sensor that runs what
is out of date.

Everything is built from :class:`adchain_assets.settings.Settings` (the environment, read once); a setting the
project cannot use stops the code location from loading with a message naming the variable.
"""

from typing import Mapping, Optional

import dagster as dg

from adchain_assets.defs.clips import build_clip_assets
from adchain_assets.defs.deliverables import build_deliverables_asset
from adchain_assets.defs.images import build_image_assets
from adchain_assets.defs.jobs import build_executor, campaign_job, placements_job
from adchain_assets.defs.placement_clips import build_placement_output_assets
from adchain_assets.defs.placements import PlacementChoice, build_placement_frame_assets
from adchain_assets.defs.resources import build_resources
from adchain_assets.defs.review import build_report_asset, build_storyboard_asset, build_storyboard_pdf_asset
from adchain_assets.defs.sensors import build_brief_sensor
from adchain_assets.defs.sheets import build_sheets_asset
from adchain_assets.defs.steps import step_retry
from adchain_assets.settings import Settings


def build_definitions(settings: Settings, resources: Optional[Mapping[str, object]] = None) -> dg.Definitions:
    """Every definition of the project for ``settings``; ``resources`` replace some of the project's own (tests
    use it to point a model at a local server with short waits)."""
    retry = step_retry(settings.step_retry_delay_s)
    return dg.Definitions(
        assets=[
            build_sheets_asset(retry),
            *build_image_assets(settings.max_scenes, retry),
            *build_clip_assets(settings.max_scenes, retry),
            build_storyboard_asset(settings.max_scenes),
            *build_placement_frame_assets(settings.max_scenes, retry),
            *build_placement_output_assets(settings.max_scenes, retry),
            build_report_asset(settings.max_scenes),
            build_storyboard_pdf_asset(settings.max_scenes),
            build_deliverables_asset(),
        ],
        jobs=[campaign_job, placements_job],
        sensors=[build_brief_sensor(campaign_job)],
        # which placements a run makes: set in a launchpad for the whole run, every placement by default
        resources={**build_resources(settings), "placement_choice": PlacementChoice.configure_at_launch(),
                   **(resources or {})},
        executor=build_executor(settings),
    )


defs = build_definitions(Settings.from_env())
