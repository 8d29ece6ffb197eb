"""What every asset step of a campaign does the same way: load the run's pinned brief, read its stored parents,
refuse a request the model refused before, retry transient faults later, and show an image in the UI."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Optional

import dagster as dg

from adchain_assets.brief.model import BriefError, LoadedBrief
from adchain_assets.defs.resources import CampaignBriefs
from adchain_assets.media.images import thumbnail_jpeg
from adchain_assets.plan.calls import Call
from adchain_assets.plan.requests import Parent, Request, parents_of
from adchain_assets.store.budget import budgeted
from adchain_assets.store.files import CampaignFiles, StoredOutput
from adchain_assets.store.ledger import Ledger

THUMBNAIL_PX = 192


def step_retry(delay_s: float = 20.0) -> dg.RetryPolicy:
    """After the SDK's own retries: a step that still failed on a transient fault gets two more chances, later."""
    return dg.RetryPolicy(max_retries=2, delay=delay_s, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pinned(context: dg.AssetExecutionContext, briefs: CampaignBriefs, output: str) -> LoadedBrief:
    """The brief this run works from (its pinned snapshot); a brief that cannot be used fails the step."""
    try:
        return briefs.for_run(context.partition_key, context.run.run_id, context.run.tags)
    except BriefError as error:
        raise dg.Failure(description=f"{output}: {error}", allow_retries=False) from error


def load_parents(files: CampaignFiles, campaign: str, output: str, loaded: LoadedBrief, *,
                 required: bool = True) -> dict[str, StoredOutput]:
    """The stored parents of ``output`` (verified), as {name: output}; a missing one fails the step when
    ``required``."""
    found = {}
    for name in parents_of(output, loaded):
        stored = files.read_output(campaign, name)
        if stored is None:
            if required:
                raise dg.Failure(description=f"{output}: {name} is not made yet; materialize it first",
                                 allow_retries=False)
            continue
        found[name] = stored
    return found


def as_parents(stored: dict[str, StoredOutput]) -> dict[str, Parent]:
    return {name: Parent(name, output.provenance) for name, output in stored.items()}


def held_call(ledger: Ledger, campaign: str, output: str, request: Request,
              budget_usd: Optional[float] = None) -> Optional[Call]:
    """The ledger's final refusal of exactly this request, if the model gave one: it is not asked again (a refusal
    for the budget, only while the campaign's budget is still ``budget_usd``)."""
    return ledger.latest(campaign).refusal(output, request.call_keys, budget_usd)


def thumbnail_markdown(image: bytes, alt: str, max_px: int = THUMBNAIL_PX) -> str:
    """A small JPEG data URI, so the UI shows the image without serving files."""
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(thumbnail_jpeg(image, max_px)).decode()})"


def paid_generator(image_model, budget: Optional[float], label: str):
    """``image_model``'s generator, making no paid call once the campaign's ``budget`` is reached; a backend that
    cannot start (no API key) fails the step, naming ``label``, with no retry."""
    try:
        return budgeted(image_model.generator(), budget)
    except ValueError as error:
        raise dg.Failure(description=f"{label}: {error}", allow_retries=False) from error
