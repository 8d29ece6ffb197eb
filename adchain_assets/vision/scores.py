"""Identity and product scores of every image: what the asset checks report and best-of-N takes rank by.

For each character in the image: *cross* distance to its anchor (its ``photo``, else the reference image of
the scene it first appears in) and *self* distance to the previous image of the same chain where it
appears (dlib face descriptors; same person below 0.6). For each product: local-feature similarity to its
anchor (see :mod:`adchain_assets.vision.consistency` for what that can and cannot tell). The Dagster asset
checks that report them are :mod:`adchain_assets.defs.checks`.

An image from a backend that draws no faces (the offline ``preview`` frames) is not scored for identity: its
characters get ``passed=None`` with the reason, and no face search is run on it.

Scoring reads features, it does not recompute them: every image's faces and keypoints are computed once and
kept by a :class:`adchain_assets.vision.features.FeatureStore` under the image's sha256, so checking an image costs
the new image's own features plus the matching; its anchor's and predecessor's are read from storage, and their
PNGs are not even loaded when ``sha_of`` names them (their provenance records their sha256). Without a store
(``store=None``) the features are kept in this process's memory only.
"""

import io
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from PIL import Image
from upath import UPath

from adchain_assets.brief.model import Brief, LoadedBrief, Subject
from adchain_assets.plan.prompts import SHEET_VIEWS
from adchain_assets.plan.references import Slot, sheet_output
from adchain_assets.vision import consistency
from adchain_assets.vision.features import FACES, PRODUCT, FeatureStore

NO_FACES_DRAWN = "not scored: preview frames have no faces"


@dataclass
class SubjectScore:
    subject: str
    kind: str
    anchor: str
    passed: Optional[bool]  # None: not scored (``detail["note"]`` says why)
    value: Optional[float]  # face distance (lower is better) or product score (higher is better)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def note(self) -> Optional[str]:
        return self.detail.get("note")

    @property
    def similarity(self) -> float:
        """In [0, 1], higher is more consistent: what best-of-N takes compare."""
        if self.value is None:
            return 0.0
        return max(0.0, 1.0 - self.value) if self.kind == "character" else self.value


def anchor_of(brief: Brief, subject_id: str) -> str:
    """The output a subject's images are scored against when it has no ``photo``: its sheet in ``sheets`` mode,
    else the reference image of the scene it first appears in."""
    if brief.reference_mode == "sheets":
        return sheet_output(subject_id)
    scene = next(k for k, s in enumerate(brief.scenes, start=1) if subject_id in s.subjects)
    return Slot("reference", scene).key


def previous_appearance(brief: Brief, slot: Slot, subject_id: str) -> Optional[Slot]:
    earlier = [k for k in range(1, slot.scene) if subject_id in brief.scene(k).subjects]
    return Slot(slot.chain, earlier[-1]) if earlier else None


def provenance_sha256(png_path: UPath) -> Optional[str]:
    """The sha256 the provenance JSON beside ``png_path`` records (None when there is none): an image's
    identity without reading its PNG."""
    try:
        value = json.loads(png_path.with_suffix(".json").read_text()).get("sha256")
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and len(value) == 64 else None


_MEMORY_ONLY = FeatureStore(None)


class _Image:
    """One image a check looks at: its features come from the store the first time they are needed."""

    def __init__(self, store: FeatureStore, png: Optional[bytes] = None, sha: Optional[str] = None,
                 load: Optional[Callable[[], Optional[bytes]]] = None):
        self.store, self.png, self.sha, self.load = store, png, sha, load

    def faces(self):
        """The faces, or None when the image cannot be read after all."""
        if self.png is not None:
            return self.store.faces(self.png, self.sha)
        return self.store.faces_of(self.sha, self.load)

    def product(self):
        if self.png is not None:
            return self.store.product(self.png, self.sha)
        return self.store.product_of(self.sha, self.load)


def score_image(
    loaded: LoadedBrief,
    slot: Slot,
    png: bytes,
    image_of: Callable[[str], Optional[bytes]],
    *,
    store: Optional[FeatureStore] = None,
    sha_of: Optional[Callable[[str], Optional[str]]] = None,
    sha: Optional[str] = None,
    faces_drawn: bool = True,
) -> list[SubjectScore]:
    """Scores of every subject in ``slot``'s scene.

    ``image_of`` reads another image of the campaign by output name (None when it is not made). With ``sha_of``
    (another image's sha256 from its provenance, None when not made) ``image_of`` is called only for images
    whose features ``store`` does not hold yet. In ``sheets`` mode every subject is scored against its sheet. ``sha`` is ``png``'s sha256 when the caller has it already.
    ``faces_drawn`` is False for an image whose backend draws no faces: its characters are not scored.
    """
    store = store or _MEMORY_ONLY
    brief = loaded.brief
    limits = brief.checks
    subjects = [brief.subject(subject_id) for subject_id in brief.scene(slot.scene).subjects]
    # The new image's features of every kind its subjects need, computed side by side (the critical path).
    kinds = {PRODUCT if subject.kind == "product" else FACES for subject in subjects}
    if not faces_drawn:
        kinds.discard(FACES)
    sha = store.prepare(png, sorted(kinds), sha) if kinds else sha
    own = _Image(store, png=png, sha=sha)
    others: dict[str, Optional[_Image]] = {}

    def image(other: str) -> Optional[_Image]:
        if other == slot.key:
            return own
        if other not in others:
            if sha_of is not None:
                found = sha_of(other)
                others[other] = _Image(store, sha=found, load=lambda: image_of(other)) if found else None
            else:
                stored = image_of(other)
                others[other] = _Image(store, png=stored) if stored is not None else None
        return others[other]

    scores = []
    for subject_id, subject in zip(brief.scene(slot.scene).subjects, subjects):
        if subject.photo and brief.reference_mode != "sheets":
            anchor_name, anchor = f"photo {subject.photo}", _Image(store, png=loaded.resolve(subject.photo).read_bytes())
        else:
            anchor_name = anchor_of(brief, subject_id)
            anchor = image(anchor_name)
        if subject.kind == "character" and not faces_drawn:
            scores.append(SubjectScore(subject_id, "character", anchor_name, None, None, {"note": NO_FACES_DRAWN}))
        elif subject.kind == "character":
            anchor_faces = anchor.faces() if anchor else None
            cross = (
                consistency.identity_from_faces(own.faces(), anchor_faces, threshold=limits.max_face_distance)
                if anchor_faces is not None else None
            )
            detail: dict[str, Any] = {"cross": cross.to_metadata() if cross else "anchor not made yet"}
            previous = previous_appearance(brief, slot, subject_id)
            before = image(previous.key) if previous else None
            before_faces = before.faces() if before else None
            if before_faces is not None:
                own_score = consistency.identity_from_faces(own.faces(), before_faces, threshold=limits.max_face_distance)
                detail["self"] = {"previous": str(previous), **own_score.to_metadata()}
            passed = bool(cross and cross.found and cross.same_person)
            scores.append(SubjectScore(subject_id, "character", anchor_name, passed, cross.distance if cross else None, detail))
        else:
            anchor_features = anchor.product() if anchor else None
            product = (
                consistency.product_similarity_from_features(own.product(), anchor_features, threshold=limits.min_product_score)
                if anchor_features is not None else None
            )
            passed = bool(product and product.same_product)
            detail = {"cross": product.to_metadata() if product else "anchor not made yet"}
            box = product_box(product, own.product().size, png) if product and product.same_product else None
            scores.append(SubjectScore(subject_id, "product", anchor_name, passed,
                                       product.score if product else None, {**detail, **({"box": box} if box else {})}))
    return scores


def score_sheet(subject: Subject, png: bytes, *, store: Optional[FeatureStore] = None,
                faces_drawn: bool = True, sha: Optional[str] = None) -> SubjectScore:
    """Is a subject's sheet fit to be every image's anchor? A character sheet shows one face per view (two views
    generated, one in a photo); a product sheet has enough texture to be matched (its keypoints are stored under
    the sheet's sha256, where every image's product check reads them)."""
    store = store or _MEMORY_ONLY
    name = sheet_output(subject.id)
    if subject.kind == "character":
        if not faces_drawn:
            return SubjectScore(subject.id, "character", name, None, None, {"note": NO_FACES_DRAWN})
        views = 1 if subject.photo else SHEET_VIEWS["character"]
        found = len(store.faces(png, sha))
        detail = {"faces": found, "views": views}
        if found != views:
            detail["reason"] = f"{found} faces where the sheet should show {views} (one per view)"
        return SubjectScore(subject.id, "character", name, found == views, float(found), detail)
    keypoints = len(store.product(png, sha))
    enough = keypoints >= consistency.PRODUCT_MIN_ANCHOR_KEYPOINTS
    detail = {"keypoints": keypoints}
    if not enough:
        detail["reason"] = (f"{keypoints} keypoints: too little texture to recognise the product by"
                            f" (at least {consistency.PRODUCT_MIN_ANCHOR_KEYPOINTS})")
    return SubjectScore(subject.id, "product", name, enough, float(keypoints), detail)


def product_box(product: consistency.ProductScore, matched_size: tuple[int, int], png: bytes) -> Optional[list[int]]:
    """Where a product check found the product (its inliers' box), in ``png``'s own pixels: what a crop keeps in
    frame (:mod:`adchain_assets.media.crop`)."""
    if product.box is None:
        return None
    with Image.open(io.BytesIO(png)) as image:  # reads the header only
        width, height = image.size
    sx, sy = width / matched_size[0], height / matched_size[1]
    left, top, right, bottom = product.box
    return [round(left * sx), round(top * sy), round(right * sx), round(bottom * sy)]


def summary(scores: list[SubjectScore]) -> dict[str, Any]:
    """What goes into the image's provenance and the campaign report (a found product's box too)."""
    return {s.subject: {"kind": s.kind, "anchor": s.anchor, "passed": s.passed, "value": s.value,
                        **({"self": s.detail["self"].get("distance")} if "self" in s.detail else {}),
                        **({"note": s.note} if s.note else {}),
                        **({"box": s.detail["box"]} if s.detail.get("box") else {})}
            for s in scores}


def consistency_score(scores: list[SubjectScore]) -> float:
    return sum(s.similarity for s in scores) / len(scores) if scores else 0.0


