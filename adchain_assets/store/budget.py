"""The budget during a run: no paid call is made once the campaign's ledger total has reached its budget.

:func:`budgeted` wraps a generator so that, right before each call it makes (the generation cache already
missed: a cached answer is free and never refused), :func:`over_budget` reads the campaign's ledger total (one
listing and one batch of reads) and, at or over the budget, records the refusal in the ledger instead of calling
the model: outcome ``BUDGET``, final, no usage (it costs nothing), the budget it was refused under in its detail.
The plan then holds that output until the budget changes, and the step fails with that reason; nothing already
made is touched. A clip whose operation was started before (a retried step resuming it) is not refused: that
clip is being paid for anyway.

What it cannot do: see calls in flight. A call is admitted while the ledger total is under the budget, and its
cost is recorded when its reply arrives (a Veo clip's when its operation finishes), so the ledger can end above
the budget by what the calls in flight at that moment cost: at most one call per slot of the ``image_model`` and
``video_model`` pools (each image call with its no-image retries, each clip its seconds); docs/costs.md works out
the figure for the default limits.
"""

from __future__ import annotations

from typing import Optional

from adchain_assets.plan.calls import BUDGET, Call
from adchain_assets.plan.estimate import OFFLINE_BACKENDS, money
from adchain_assets.providers.images.base import GeneratedImage, GenerationError, ImageGenerator, ImageRequest
from adchain_assets.providers.video.base import (
    GeneratedVideo,
    OperationRecord,
    VideoGenerationError,
    VideoGenerator,
    VideoRequest,
)
from adchain_assets.store.ledger import CallMeter


def over_budget(meter: Optional[CallMeter], budget_usd: Optional[float], *, backend: str, model: str,
                kind: str) -> Optional[str]:
    """Why the call ``meter`` is about to record must not be made (recorded in the ledger), or None."""
    if budget_usd is None or meter is None or meter.ledger is None:
        return None
    spent = meter.ledger.spend(meter.campaign).spend_usd
    if spent < budget_usd - 1e-9:
        return None
    meter.ledger.record(Call(
        campaign=meter.campaign, output=meter.output, request_sha256=meter.request_sha256, backend=backend,
        model=model, kind=kind, attempt=1, outcome=BUDGET, final=True, usage={}, cost_usd=0.0, run_id=meter.run_id,
        detail={"budget_usd": budget_usd, "spent_usd": spent},
    ))
    return (f"budget reached: spent {money(spent)} of {money(budget_usd)} (budget_usd); no call made, raise the"
            " budget to go on")


class BudgetedImages(ImageGenerator):
    """``inner``, refusing its calls once the campaign's budget is reached (reason ``BUDGET``, final)."""

    def __init__(self, inner: ImageGenerator, budget_usd: float):
        self.inner, self.budget_usd = inner, budget_usd
        self.backend, self.model, self.draws_faces = inner.backend, inner.model, inner.draws_faces

    def generate(self, request: ImageRequest, meter=None) -> GeneratedImage:
        refusal = over_budget(meter, self.budget_usd, backend=self.backend, model=self.model, kind="image")
        if refusal is not None:
            raise GenerationError(refusal, reason=BUDGET, retryable=False)
        return self.inner.generate(request, meter=meter) if meter is not None else self.inner.generate(request)


class BudgetedVideos(VideoGenerator):
    """``inner``, refusing to start an operation once the campaign's budget is reached (reason ``BUDGET``)."""

    def __init__(self, inner: VideoGenerator, budget_usd: float):
        self.inner, self.budget_usd = inner, budget_usd
        self.backend, self.model = inner.backend, inner.model

    def generate(self, request: VideoRequest, meter=None, resume: "OperationRecord | None" = None) -> GeneratedVideo:
        if resume is None or resume.load() is None:  # a stored operation is resumed: it is being paid for anyway
            refusal = over_budget(meter, self.budget_usd, backend=self.backend, model=self.model, kind="video")
            if refusal is not None:
                raise VideoGenerationError(refusal, reason=BUDGET, retryable=False)
        return self.inner.generate(request, meter=meter, resume=resume)


def budgeted(generator, budget_usd: Optional[float]):
    """``generator`` under ``budget_usd``; as it is without a budget, or for a backend that is free (preview)."""
    if budget_usd is None or generator.backend in OFFLINE_BACKENDS:
        return generator
    if isinstance(generator, VideoGenerator):
        return BudgetedVideos(generator, budget_usd)
    return BudgetedImages(generator, budget_usd)
