"""The identity and product asset checks of every image, evaluated in the image's own step.

They report :mod:`adchain_assets.vision.scores` (no extra process per check) and are declared blocking: a brief
that sets ``checks.blocking`` turns a failing check into an ERROR, which stops the image's downstream in that
run; otherwise it is a warning and the chain goes on. A subject that is not scored (a preview frame has no faces)
passes with the reason in the check's metadata.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from adchain_assets.brief.model import Brief
from adchain_assets.plan.references import Slot
from adchain_assets.vision.scores import SubjectScore

IDENTITY_CHECK = "identity"
PRODUCT_CHECK = "product"
SHEET_CHECK = "sheet"


def check_specs(slot: Slot) -> list[dg.AssetCheckSpec]:
    key = dg.AssetKey(slot.key_path)
    return [
        dg.AssetCheckSpec(IDENTITY_CHECK, asset=key, blocking=True,
                          description="Each character is the same person as its anchor (face distance)."),
        dg.AssetCheckSpec(PRODUCT_CHECK, asset=key, blocking=True,
                          description="Each product matches its anchor (local feature matching)."),
    ]


def check_results(brief: Brief, scores: list[SubjectScore]) -> list[dg.AssetCheckResult]:
    severity = dg.AssetCheckSeverity.ERROR if brief.checks.blocking else dg.AssetCheckSeverity.WARN
    results = []
    for name, kind in ((IDENTITY_CHECK, "character"), (PRODUCT_CHECK, "product")):
        mine = [s for s in scores if s.kind == kind]
        metadata: dict[str, Any] = {
            s.subject: dg.MetadataValue.json({"anchor": s.anchor, "passed": s.passed, "value": s.value, **s.detail})
            for s in mine
        }
        for s in mine:
            label = "cross_distance" if kind == "character" else "score"
            if s.note:
                metadata[f"{s.subject}_{label}"] = dg.MetadataValue.text(s.note)
            else:
                value = dg.MetadataValue.float(round(s.value, 4)) if s.value is not None else dg.MetadataValue.text("none")
                metadata[f"{s.subject}_{label}"] = value
        if not mine:
            metadata["note"] = dg.MetadataValue.text(f"no {kind} in this scene")
        elif all(s.passed is None for s in mine):
            metadata["note"] = dg.MetadataValue.text(mine[0].note or "not scored")
        results.append(dg.AssetCheckResult(
            check_name=name, passed=all(s.passed is not False for s in mine), severity=severity, metadata=metadata,
        ))
    return results


def slot_not_in_brief(slot: Slot) -> list[dg.AssetCheckResult]:
    note = dg.MetadataValue.text(f"the brief has no scene {slot.scene}: no image, nothing to check")
    return [dg.AssetCheckResult(check_name=name, passed=True, metadata={"note": note})
            for name in (IDENTITY_CHECK, PRODUCT_CHECK)]


def sheet_check_result(brief: Brief, scores: list[SubjectScore], refused: list[str]) -> dg.AssetCheckResult:
    """The ``sheet`` check of the subjects asset: every sheet fit to be its subject's anchor, none refused."""
    severity = dg.AssetCheckSeverity.ERROR if brief.checks.blocking else dg.AssetCheckSeverity.WARN
    metadata: dict[str, Any] = {
        s.subject: dg.MetadataValue.json({"passed": s.passed, "value": s.value, **s.detail}) for s in scores
    }
    if refused:
        metadata["refused"] = dg.MetadataValue.json(refused)
    passed = not refused and all(s.passed is not False for s in scores)
    return dg.AssetCheckResult(check_name=SHEET_CHECK, passed=passed, severity=severity, metadata=metadata)
