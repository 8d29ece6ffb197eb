"""The campaign report: what each image cost and how consistent it is, and what the campaign has spent."""

from typing import Any, Mapping

import pandas as pd


def report_rows(images: dict[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per output (``{"reference/scene_1": provenance, ...}``): what it cost and how consistent it is."""
    rows = []
    for key, record in images.items():
        row = {
            "image": key,
            "take": record.get("take", 0),
            "backend": record["backend"],
            "model": record["model"],
            "cost_usd": record["cost_usd"],
            "latency_s": record["latency_s"],
            "cache_hit": record["cache_hit"],
        }
        checks = record.get("consistency", {})
        for subject, score in checks.items():
            label = "distance" if score["kind"] == "character" else "score"
            row[f"{subject}_{label}"] = score["value"]
            if "self" in score:
                row[f"{subject}_self_distance"] = score["self"]
            row[f"{subject}_passed"] = score["passed"]
        kinds = {score["kind"] for score in checks.values()}
        row["identity_check"] = all(s["passed"] for s in checks.values() if s["kind"] == "character") if "character" in kinds else None
        row["product_check"] = all(s["passed"] for s in checks.values() if s["kind"] == "product") if "product" in kinds else None
        if record.get("candidates"):
            row["candidates"] = len(record["candidates"])
        rows.append(row)
    return pd.DataFrame(rows)
