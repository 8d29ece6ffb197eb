"""The campaign report: what each image cost and how consistent it is, and what the campaign has spent; for
the run that made the report, what each output was estimated to cost beside what its calls cost."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pandas as pd


def report_rows(images: dict[str, Mapping[str, Any]], estimates: Optional[Mapping[str, Mapping[str, Any]]] = None,
                run_costs: Optional[Mapping[str, float]] = None) -> pd.DataFrame:
    """One row per output (``{"reference/scene_1": provenance, ...}``): what it cost and, for an image, how
    consistent it is. ``estimates`` (the run's estimate per output: ``estimate_usd``, ``basis``) and ``run_costs``
    (what the run's billed calls of each output cost, retries included) give the columns ``estimate_usd``,
    ``estimate`` and ``run_cost_usd``, side by side with ``cost_usd``; empty for an output the run did not plan."""
    rows = []
    for key, record in images.items():
        planned = (estimates or {}).get(key)
        row = {
            "output": key,
            "take": record.get("take", 0),
            "backend": record["backend"],
            "model": record["model"],
            "cost_usd": record["cost_usd"],
            "estimate_usd": planned.get("estimate_usd") if planned else None,
            "run_cost_usd": round((run_costs or {}).get(key, 0.0), 6) if planned else None,
            "estimate": planned.get("basis") if planned else None,
            "latency_s": record["latency_s"],
            "cache_hit": record["cache_hit"],
        }
        checks = record.get("consistency", {})
        for subject, score in checks.items():
            label = "distance" if score["kind"] == "character" else "score"
            row[f"{subject}_{label}"] = score["value"]
            if "self" in score:
                row[f"{subject}_self_distance"] = score["self"]
            row[f"{subject}_passed"] = score["passed"] if score["passed"] is not None else score.get("note", "not scored")
        row["identity_check"] = _verdict([s for s in checks.values() if s["kind"] == "character"])
        row["product_check"] = _verdict([s for s in checks.values() if s["kind"] == "product"])
        if record.get("candidates"):
            row["candidates"] = len(record["candidates"])
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict(scores: list[Mapping[str, Any]]) -> Any:
    """True or False over the scored subjects; the reason when none was scored; None when there are none."""
    scored = [s["passed"] for s in scores if s["passed"] is not None]
    if scored:
        return all(scored)
    return scores[0].get("note", "not scored") if scores else None
