"""Scores of a placement frame against its master frame: is it the same person, the same product, recomposed?

A placement frame (``placements/9x16/start/scene_2``) shows the master frame's moment in another shape, so every
subject of its scene is scored against that master frame (``start/scene_2``), not against the subject's anchor:
a character by the distance between its closest face and the master frame's main face (same person below the
brief's ``checks.max_face_distance``), a product by the local features both frames share (the score of
:func:`adchain_assets.vision.consistency.product_similarity_from_features`). The master frame's features are read
from the feature store (its PNG is loaded only when they are not stored yet).

What it cannot tell: matched against a whole master frame, the product score measures the texture the two frames
share (the product and its surroundings), so a recomposition that keeps the background but redraws the label can
still pass; the product's box is where that shared texture lies. Frames from a backend that draws no faces (the
offline preview) are not scored for identity.
"""

from __future__ import annotations

from typing import Callable, Optional

from adchain_assets.brief.model import Brief
from adchain_assets.vision import consistency
from adchain_assets.vision.features import FACES, PRODUCT, FeatureStore
from adchain_assets.vision.scores import NO_FACES_DRAWN, SubjectScore, product_box


def score_placement(
    brief: Brief,
    scene: int,
    master: str,
    png: bytes,
    master_sha: str,
    load_master: Callable[[], Optional[bytes]],
    *,
    store: FeatureStore,
    sha: Optional[str] = None,
    faces_drawn: bool = True,
) -> list[SubjectScore]:
    """Scores of every subject of ``scene`` in the placement frame ``png`` against the master frame ``master``
    (its output name; ``master_sha`` its sha256, ``load_master`` reads its PNG if its features are not stored)."""
    limits = brief.checks
    subjects = [brief.subject(subject_id) for subject_id in brief.scene(scene).subjects]
    kinds = {PRODUCT if subject.kind == "product" else FACES for subject in subjects}
    if not faces_drawn:
        kinds.discard(FACES)
    sha = store.prepare(png, sorted(kinds), sha) if kinds else sha
    scores = []
    for subject in subjects:
        if subject.kind == "character" and not faces_drawn:
            scores.append(SubjectScore(subject.id, "character", master, None, None, {"note": NO_FACES_DRAWN}))
        elif subject.kind == "character":
            anchor = store.faces_of(master_sha, load_master)
            cross = (consistency.identity_from_faces(store.faces(png, sha), anchor, threshold=limits.max_face_distance)
                     if anchor is not None else None)
            scores.append(SubjectScore(
                subject.id, "character", master, bool(cross and cross.found and cross.same_person),
                cross.distance if cross else None, {"cross": cross.to_metadata() if cross else "master frame not made"}))
        else:
            anchor_features = store.product_of(master_sha, load_master)
            own = store.product(png, sha)
            product = (consistency.product_similarity_from_features(own, anchor_features,
                                                                     threshold=limits.min_product_score)
                       if anchor_features is not None else None)
            detail = {"cross": product.to_metadata() if product else "master frame not made"}
            box = product_box(product, own.size, png) if product and product.same_product else None
            scores.append(SubjectScore(subject.id, "product", master, bool(product and product.same_product),
                                       product.score if product else None, {**detail, **({"box": box} if box else {})}))
    return scores
