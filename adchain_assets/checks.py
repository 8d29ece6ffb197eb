"""Consistency you can see: identity and product scores of every image, as Dagster asset checks.

For each character in the image: *cross* distance to its anchor (its ``photo``, else the reference image of
the scene it first appears in) and *self* distance to the previous image of the same chain where it
appears (dlib face descriptors; same person below 0.6). For each product: local-feature similarity to its
anchor (see :mod:`adchain_assets.consistency` for what that can and cannot tell). The checks run inside the
image's own step (no extra process per check) and are declared blocking: a brief that sets
``checks.blocking`` turns a failing check into an ERROR, which stops the image's downstream in that run;
otherwise it is a warning and the chain goes on.
"""

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Optional

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from adchain_assets import consistency
from adchain_assets.brief import Brief, LoadedBrief
from adchain_assets.references import Slot

IDENTITY_CHECK = "identity"
PRODUCT_CHECK = "product"


def check_specs(slot: Slot) -> list[AssetCheckSpec]:
    key = AssetKey(slot.key_path)
    return [
        AssetCheckSpec(IDENTITY_CHECK, asset=key, blocking=True,
                       description="Each character is the same person as its anchor (face distance)."),
        AssetCheckSpec(PRODUCT_CHECK, asset=key, blocking=True,
                       description="Each product matches its anchor (local feature matching)."),
    ]


@dataclass
class SubjectScore:
    subject: str
    kind: str
    anchor: str
    passed: bool
    value: Optional[float]  # face distance (lower is better) or product score (higher is better)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def similarity(self) -> float:
        """In [0, 1], higher is more consistent: what best-of-N takes compare."""
        if self.value is None:
            return 0.0
        return max(0.0, 1.0 - self.value) if self.kind == "character" else self.value


def first_appearance(brief: Brief, subject_id: str) -> Slot:
    scene = next(k for k, s in enumerate(brief.scenes, start=1) if subject_id in s.subjects)
    return Slot("reference", scene)


def previous_appearance(brief: Brief, slot: Slot, subject_id: str) -> Optional[Slot]:
    earlier = [k for k in range(1, slot.scene) if subject_id in brief.scene(k).subjects]
    return Slot(slot.chain, earlier[-1]) if earlier else None


@lru_cache(maxsize=64)
def _faces(png: bytes) -> tuple:
    return tuple(consistency.faces(png))


@lru_cache(maxsize=64)
def _product_features(png: bytes):
    return consistency.product_features(png)


def score_image(
    loaded: LoadedBrief, slot: Slot, png: bytes, image_of: Callable[[Slot], Optional[bytes]]
) -> list[SubjectScore]:
    """Scores of every subject in ``slot``'s scene; ``image_of`` reads another image of the campaign."""
    brief = loaded.brief
    limits = brief.checks
    scores = []
    for subject_id in brief.scene(slot.scene).subjects:
        subject = brief.subject(subject_id)
        if subject.photo:
            anchor_name, anchor = f"photo {subject.photo}", loaded.resolve(subject.photo).read_bytes()
        else:
            first = first_appearance(brief, subject_id)
            anchor_name, anchor = str(first), (png if first == slot else image_of(first))
        if subject.kind == "character":
            cross = consistency.identity_from_faces(_faces(png), _faces(anchor), threshold=limits.max_face_distance) if anchor else None
            detail: dict[str, Any] = {"cross": cross.to_metadata() if cross else "anchor not made yet"}
            previous = previous_appearance(brief, slot, subject_id)
            before = image_of(previous) if previous else None
            if before is not None:
                own = consistency.identity_from_faces(_faces(png), _faces(before), threshold=limits.max_face_distance)
                detail["self"] = {"previous": str(previous), **own.to_metadata()}
            passed = bool(cross and cross.found and cross.same_person)
            scores.append(SubjectScore(subject_id, "character", anchor_name, passed, cross.distance if cross else None, detail))
        else:
            product = (
                consistency.product_similarity_from_features(_product_features(png), _product_features(anchor), threshold=limits.min_product_score)
                if anchor else None
            )
            passed = bool(product and product.same_product)
            scores.append(SubjectScore(subject_id, "product", anchor_name, passed,
                                       product.score if product else None,
                                       {"cross": product.to_metadata() if product else "anchor not made yet"}))
    return scores


def check_results(brief: Brief, scores: list[SubjectScore]) -> list[AssetCheckResult]:
    severity = AssetCheckSeverity.ERROR if brief.checks.blocking else AssetCheckSeverity.WARN
    results = []
    for name, kind in ((IDENTITY_CHECK, "character"), (PRODUCT_CHECK, "product")):
        mine = [s for s in scores if s.kind == kind]
        metadata: dict[str, Any] = {
            s.subject: MetadataValue.json({"anchor": s.anchor, "passed": s.passed, "value": s.value, **s.detail})
            for s in mine
        }
        for s in mine:
            label = "cross_distance" if kind == "character" else "score"
            metadata[f"{s.subject}_{label}"] = MetadataValue.float(round(s.value, 4)) if s.value is not None else MetadataValue.text("none")
        if not mine:
            metadata["note"] = MetadataValue.text(f"no {kind} in this scene")
        results.append(
            AssetCheckResult(check_name=name, passed=all(s.passed for s in mine), severity=severity, metadata=metadata)
        )
    return results


def slot_not_in_brief(slot: Slot) -> list[AssetCheckResult]:
    note = MetadataValue.text(f"the brief has no scene {slot.scene}: no image, nothing to check")
    return [AssetCheckResult(check_name=name, passed=True, metadata={"note": note}) for name in (IDENTITY_CHECK, PRODUCT_CHECK)]


def summary(scores: list[SubjectScore]) -> dict[str, Any]:
    """What goes into the image's provenance and the campaign report."""
    return {s.subject: {"kind": s.kind, "anchor": s.anchor, "passed": s.passed, "value": s.value,
                        **({"self": s.detail["self"].get("distance")} if "self" in s.detail else {})}
            for s in scores}


def consistency_score(scores: list[SubjectScore]) -> float:
    return sum(s.similarity for s in scores) / len(scores) if scores else 0.0


