"""The campaign report: what each image cost and how consistent it is, and what the campaign has spent."""

from typing import Any, Mapping

import pandas as pd
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from adchain_assets.references import CHAINS, Slot


def campaign_spend(instance: DagsterInstance, campaign: str, scene_count: int) -> float:
    """Every model call ever paid for ``campaign``: all takes and runs of its images and clips."""
    keys = [AssetKey(Slot(chain, k).key_path) for chain in CHAINS for k in range(1, scene_count + 1)]
    keys += [AssetKey(["clip", f"scene_{k}"]) for k in range(1, scene_count + 1)]
    total = 0.0
    for key in keys:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[campaign]), limit=10_000
        ).records
        for record in records:
            cost = record.asset_materialization.metadata.get("cost_usd")
            total += float(cost.value) if cost is not None else 0.0
    return total


def report_rows(images: dict[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per image (``{"reference/scene_1": provenance, ...}``): what it cost and how consistent it is."""
    rows = []
    for key, record in images.items():
        row = {
            "image": key,
            "take": record["take"],
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
