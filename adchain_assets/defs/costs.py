"""What a run launched by the sensor or the command line carries about its price: its estimate, in its tags (the
UI shows them on the run) and kept in storage for its report (:mod:`adchain_assets.store.estimates`), and a run key
that names the budget, so that work refused under one budget is requested again under a new one."""

from __future__ import annotations

from typing import Optional

from adchain_assets.defs.resources import Storage
from adchain_assets.plan.plan import Plan
from adchain_assets.store.estimates import save_estimate

ESTIMATE_TAG = "adchain/estimate_usd"  # the run's estimate in USD ("unknown": a model without a price)
ESTIMATE_ID_TAG = "adchain/estimate"  # where its estimate per output is kept (store.estimates)


def estimate_tags(storage: Storage, plan: Plan) -> dict[str, str]:
    """Keep the plan's estimate for its run's report; the tags that name it and its total."""
    if plan.estimate is None:
        return {}
    total = plan.estimate.usd
    key = save_estimate(storage.url, plan.campaign, plan.brief_sha256, plan.estimate)
    return {ESTIMATE_TAG: "unknown" if total is None else f"{total:.4f}", ESTIMATE_ID_TAG: key}


def run_key(plan: Plan, budget_usd: Optional[float]) -> str:
    """The plan's run key, with the budget when there is one: the same work is never requested twice under one key,
    and a raised budget must be able to request the work the old one stopped."""
    return plan.run_key() if budget_usd is None else f"{plan.run_key()}:budget={budget_usd:g}"
