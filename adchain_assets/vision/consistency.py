"""Consistency scores between two images: is it the same person, is it the same product?

Pure functions over image bytes (PNG/JPEG/WebP...), file paths, PIL images or RGB ``uint8`` arrays. Everything runs
offline on the CPU; the model files come from pip packages (``dlib-bin`` and ``face-recognition-models``), nothing is
downloaded at run time. The models are loaded lazily, once per process, and every call into dlib is serialised
by a lock, so the functions may be called from several threads.

Faces (dlib)
------------
``faces(image)`` finds the faces with dlib's HOG frontal face detector and describes each by the 128-d vector of
dlib's ResNet face recognition model (aligned with the 5-point landmark model). Two descriptors of one person are
closer than ``SAME_PERSON = 0.6`` (euclidean distance); that threshold is dlib's own. On the real photos of the
test suite (five people, 55 pairs) the same-person pairs lie at 0.33-0.44 and the different-person pairs at 0.70-1.02;
after resizing (0.5x, 2x, face shrunk to 40 px), cropping, colour grading, greyscale or JPEG quality 40 the
same-person distances stay at or below 0.49 and the different-person ones at or above 0.66.

* Small faces: the HOG detector needs a face of about 80 x 80 pixels. When nothing is found at the image's own
  size, the image is upscaled 2x, then 4x (as long as the upscaled image stays under ``DETECT_MAX_PIXELS`` and 4x),
  so faces down to ~25 px wide are found and recognised in small images (at 20 px recognition starts to fail).
  Images larger than ``DETECT_MAX_SIDE`` are downscaled for the detector (their faces are large); landmarks and
  descriptors are always computed on the full-size image. Consequence: in an image that has a face the detector
  finds at the first scale, faces under ~80 px at that scale are not listed.
* The detector finds frontal and slightly turned faces; profiles, faces turned away, heavily occluded or painted
  faces are "no face". False detections are rare but possible, and a face on a poster or screen counts as a face
  (in obama_and_biden.jpg a small face in the background is the third face found).
* Orientation: the EXIF orientation of a file is applied; a sideways image without EXIF is not rotated.

``identity(image, anchor_image)`` -- the multi-face rule:

* The *anchor's* face is its **main face**: the largest face box (ties broken by the detector's confidence).
  An anchor should show the one person to keep; in a group photo the largest face is taken.
* The *candidate's* face is the face **closest to the anchor's main face** among all its faces, so a scene with
  the model and extras passes when the model is in it. ``face_count`` (and ``anchor_face_count``) says how many
  faces each image had, so a check can also demand exactly one person.
* No face in either image is a result, not an error: ``found=False``, ``same_person=False`` and ``reason`` says
  which image had no face.

Products (OpenCV SIFT + RANSAC)
-------------------------------
``product_similarity(image, anchor_image)`` asks whether the textured object of the anchor (a perfume bottle with
its printed label) appears in the image. Both images are reduced to ``PRODUCT_MAX_SIDE`` px (long side) in
grey, SIFT keypoints are matched anchor -> image with Lowe's ratio test (0.75) and one match per image keypoint, and a
homography is fitted with RANSAC. The evidence is the number of **inliers**: matches that agree with one plane
transform (distinct positions, with a sane non-mirrored transform). The score is ``inliers / (inliers + K)`` with
``K = PRODUCT_HALF_INLIERS = 25``, so it lies in [0, 1), is 0.5 at 25 inliers, and the verdict is
``same_product = score >= SAME_PRODUCT (0.5)``, i.e. at least 25 geometrically consistent matches. In the test
suite the same label (rotated up to 180 degrees, scaled 0.3-1.3x, colour-graded, channel-swapped, blurred and
JPEG-compressed, perspective-warped, a third of it covered, on photo backgrounds) gets 38-220 inliers (median ~130),
while other labels -- also on the very same bottle shape -- in the same views get 0-17, photos without the product
0-5, and real-photo "products" (crops of photos on a card) 60-90 vs 0-4: 25 leaves a margin of ~1.5x each side.
Random matches rarely agree on one homography, so the inlier count of unrelated images stays in single digits.

What it can tell: the same printed label, logo or pattern across viewpoint (rotation, scale, moderate perspective),
lighting and colour changes, background changes and partial occlusion, and where the label is in the image.

What it cannot tell:

* two physically different but identical-looking bottles (same print = same product to it);
* a label redesigned on the *same* bottle, shown in the anchor's own framing on the same background: the shared
  outline, cap and label frame alone give ~35 inliers (near the threshold), so there the verdict is not reliable
  (in any other pose or background such a bottle stays at 17 inliers or fewer);
* textureless objects: a plain glass bottle or flat-coloured cap gives too few keypoints (an anchor with fewer
  than ``PRODUCT_MIN_ANCHOR_KEYPOINTS = 50`` gets score 0 and a ``reason``) -- it compares *printed texture*, not
  shape or colour; soft, blurry textures (a painted backdrop) give few stable keypoints and may fall short too;
* it compares whatever texture the anchor holds: crop the anchor to the product, or its background (a face, a
  patterned wall) counts as "product" too; a background shared by both images also raises the score;
* strong out-of-plane turns (the label seen from the side), a label re-drawn rather than reproduced (generative
  models re-letter text: a label whose lettering changes from image to image loses inliers), mirrored images (the
  mirrored transform is rejected) and very small labels (under ~50 px across at 1024 px) fall below the threshold;
* colour is ignored (grey images), so a recoloured label with the same design still matches.

Timings (2 cores, 1024 x 1024 PNG bytes, models loaded; loading takes ~0.7 s once per process): ``faces`` ~0.18 s
per image (0.39 s when there is no face, as the 2x upscale is tried too), ``identity`` ~0.37 s per pair;
``product_features`` ~0.17-0.23 s per image, ``product_similarity`` ~0.35 s per pair (the matching itself ~0.02 s).
Pass precomputed ``faces()`` / ``product_features()`` to ``identity_from_faces`` /
``product_similarity_from_features`` to score many images against one anchor.
"""

from __future__ import annotations

import importlib.util
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence, Union

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "SAME_PERSON",
    "SAME_PRODUCT",
    "PRODUCT_HALF_INLIERS",
    "Box",
    "Face",
    "IdentityScore",
    "ProductFeatures",
    "ProductScore",
    "ImageInput",
    "load_rgb",
    "load_models",
    "faces",
    "face_distance",
    "identity",
    "identity_from_faces",
    "product_features",
    "product_similarity",
    "product_similarity_from_features",
]

ImageInput = Union[bytes, bytearray, memoryview, str, os.PathLike, Image.Image, np.ndarray]
"""Encoded image bytes, a path to an image file, a PIL image, or an RGB (H, W, 3) / grey (H, W) uint8 array."""

SAME_PERSON = 0.6
"""Descriptor distance below which two faces are the same person (dlib's threshold for its ResNet model)."""

DETECT_MAX_SIDE = 1600
"""Images whose long side is larger are downscaled to this for face detection."""
DETECT_MAX_PIXELS = 6_000_000
"""Upscaling for face detection stops before the detection image has more pixels than this."""
DETECT_MAX_UPSCALE = 4
"""At most this upscale (2x steps) for face detection of small images."""

PRODUCT_MAX_SIDE = 1024
"""Images are reduced to this long side for product matching."""
PRODUCT_RATIO = 0.75
"""Lowe's ratio test: best match distance must be below this times the second best."""
PRODUCT_HALF_INLIERS = 25
"""Inlier count at which the product score is 0.5 (the decision threshold)."""
SAME_PRODUCT = 0.5
"""Product score at or above which the product is judged the same (= ``PRODUCT_HALF_INLIERS`` inliers)."""
PRODUCT_MIN_ANCHOR_KEYPOINTS = 2 * PRODUCT_HALF_INLIERS
"""An anchor with fewer keypoints is too textureless to be recognised: it could never, or only with nearly every
keypoint found again, reach PRODUCT_HALF_INLIERS inliers (a plain bottle's outline and cap give about 30)."""
PRODUCT_MAX_KEYPOINTS = 4000


# --------------------------------------------------------------------------------------------------- images


def load_rgb(image: ImageInput) -> np.ndarray:
    """The image as a C-contiguous (H, W, 3) uint8 RGB array; EXIF orientation applied, alpha composited on white."""
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            raise TypeError(f"expected a uint8 image array, got {array.dtype}")
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        elif array.ndim == 3 and array.shape[2] == 4:
            return load_rgb(Image.fromarray(array, "RGBA"))
        elif array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB array, got shape {array.shape}")
        return np.ascontiguousarray(array)
    if isinstance(image, Image.Image):
        pil = image
    elif isinstance(image, (bytes, bytearray, memoryview)):
        pil = Image.open(io.BytesIO(bytes(image)))
    elif isinstance(image, (str, os.PathLike)):
        with Image.open(Path(image)) as opened:
            opened.load()
            return _pil_to_rgb(ImageOps.exif_transpose(opened))
    else:
        raise TypeError(f"not an image: {type(image).__name__}")
    pil.load()
    return _pil_to_rgb(ImageOps.exif_transpose(pil))


def _pil_to_rgb(pil: Image.Image) -> np.ndarray:
    if pil.mode == "P" and "transparency" in pil.info:
        pil = pil.convert("RGBA")
    if pil.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = pil.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(background, rgba)
    if pil.mode != "RGB":
        pil = pil.convert("RGB")
    return np.ascontiguousarray(np.asarray(pil, dtype=np.uint8))


def _resize(array: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale == 1:
        return array
    height, width = array.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(array, size, interpolation=interpolation))


# --------------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class _Models:
    detector: Any
    shape_predictor: Any
    recognizer: Any


_models: _Models | None = None
_models_lock = threading.Lock()
_dlib_lock = threading.Lock()


def _model_path(name: str) -> str:
    """Path of a model file shipped by the ``face-recognition-models`` package.

    The package's own helpers (``face_recognition_models.face_recognition_model_location()`` ...) import
    ``pkg_resources``, which new setuptools no longer ships, so the file is found next to the package instead
    (without importing it).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "face recognition models are missing: pip install face-recognition-models (and dlib-bin)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / name
        if path.is_file():
            return str(path)
    raise FileNotFoundError(f"{name} not found in the face_recognition_models package")


def _get_models() -> _Models:
    global _models
    if _models is None:
        with _models_lock:
            if _models is None:
                import dlib

                _models = _Models(
                    detector=dlib.get_frontal_face_detector(),
                    shape_predictor=dlib.shape_predictor(_model_path("shape_predictor_5_face_landmarks.dat")),
                    recognizer=dlib.face_recognition_model_v1(
                        _model_path("dlib_face_recognition_resnet_model_v1.dat")
                    ),
                )
    return _models


def load_models() -> None:
    """Load the face models now rather than on the first ``faces()`` call (e.g. in a forkserver's preload, so
    that every process forked from it has them: loading takes ~0.7 s of CPU)."""
    _get_models()


# --------------------------------------------------------------------------------------------------- faces


class Box(NamedTuple):
    """A face box in pixels of the (EXIF-oriented) image: right and bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)


@dataclass(frozen=True)
class Face:
    """One detected face: its box, its 128-d descriptor and the detector's confidence (higher = surer)."""

    box: Box
    descriptor: tuple[float, ...]
    confidence: float

    @property
    def vector(self) -> np.ndarray:
        return np.asarray(self.descriptor, dtype=np.float64)


def _detection_scales(width: int, height: int) -> list[float]:
    """The scales tried in turn until a face is found: fit into DETECT_MAX_SIDE, then upscale by 2x steps."""
    first = min(1.0, DETECT_MAX_SIDE / max(width, height))
    scales = [first]
    scale = first * 2
    while scale <= DETECT_MAX_UPSCALE and width * height * scale * scale <= DETECT_MAX_PIXELS:
        scales.append(scale)
        scale *= 2
    return scales


def faces(image: ImageInput) -> list[Face]:
    """The faces in ``image``, largest first (ties: surest first). An empty list when there is none."""
    import dlib

    rgb = load_rgb(image)
    height, width = rgb.shape[:2]
    models = _get_models()
    with _dlib_lock:
        rects: list[tuple[Any, float]] = []
        for scale in _detection_scales(width, height):
            detections, scores, _ = models.detector.run(_resize(rgb, scale), 0, 0.0)
            if len(detections):
                rects = [
                    (
                        dlib.rectangle(
                            round(d.left() / scale),
                            round(d.top() / scale),
                            round((d.right() + 1) / scale) - 1,
                            round((d.bottom() + 1) / scale) - 1,
                        ),
                        float(s),
                    )
                    for d, s in zip(detections, scores)
                ]
                break
        if not rects:
            return []
        shapes = dlib.full_object_detections()
        for rect, _ in rects:
            shapes.append(models.shape_predictor(rgb, rect))
        descriptors = models.recognizer.compute_face_descriptor(rgb, shapes, 0, 0.25)
    found = []
    for (rect, confidence), descriptor in zip(rects, descriptors):
        box = Box(
            max(0, rect.left()),
            max(0, rect.top()),
            min(width, rect.right() + 1),
            min(height, rect.bottom() + 1),
        )
        found.append(Face(box, tuple(float(v) for v in descriptor), confidence))
    found.sort(key=lambda face: (-face.box.area, -face.confidence))
    return found


def face_distance(a: Face | Sequence[float] | np.ndarray, b: Face | Sequence[float] | np.ndarray) -> float:
    """Euclidean distance of two face descriptors; below ``SAME_PERSON`` (0.6) is the same person."""
    va = a.vector if isinstance(a, Face) else np.asarray(a, dtype=np.float64)
    vb = b.vector if isinstance(b, Face) else np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(va - vb))


@dataclass(frozen=True)
class IdentityScore:
    """Whether the candidate image shows the anchor's person (see the module docstring for the multi-face rule)."""

    found: bool
    """A face was found in both images (else distance is None and reason says where none was)."""
    same_person: bool
    distance: float | None
    threshold: float
    face_count: int
    """Faces in the candidate image."""
    anchor_face_count: int
    face: Face | None = None
    """The candidate's face closest to the anchor's main face."""
    anchor_face: Face | None = None
    """The anchor's main (largest) face."""
    reason: str | None = None

    def to_metadata(self) -> dict[str, Any]:
        """Plain JSON-able values (no descriptors), e.g. for a Dagster asset check's metadata."""
        return {
            "found": self.found,
            "same_person": self.same_person,
            "distance": None if self.distance is None else round(self.distance, 4),
            "threshold": self.threshold,
            "face_count": self.face_count,
            "anchor_face_count": self.anchor_face_count,
            "face_box": None if self.face is None else list(self.face.box),
            "anchor_face_box": None if self.anchor_face is None else list(self.anchor_face.box),
            "reason": self.reason,
        }


def identity_from_faces(
    candidate_faces: Sequence[Face], anchor_faces: Sequence[Face], *, threshold: float = SAME_PERSON
) -> IdentityScore:
    """``identity`` over already detected faces (``faces()`` of each image), to score many images against one anchor."""
    count, anchor_count = len(candidate_faces), len(anchor_faces)
    missing = [name for name, found in (("image", count), ("anchor image", anchor_count)) if not found]
    if missing:
        return IdentityScore(
            found=False,
            same_person=False,
            distance=None,
            threshold=threshold,
            face_count=count,
            anchor_face_count=anchor_count,
            reason="no face found in " + " nor in ".join(missing),
        )
    anchor = min(anchor_faces, key=lambda face: (-face.box.area, -face.confidence))
    distances = [face_distance(face, anchor) for face in candidate_faces]
    best = int(np.argmin(distances))
    return IdentityScore(
        found=True,
        same_person=distances[best] < threshold,
        distance=distances[best],
        threshold=threshold,
        face_count=count,
        anchor_face_count=anchor_count,
        face=candidate_faces[best],
        anchor_face=anchor,
    )


def identity(image: ImageInput, anchor_image: ImageInput, *, threshold: float = SAME_PERSON) -> IdentityScore:
    """Is the anchor's main (largest) face among the faces of ``image``? Never raises for a missing face."""
    return identity_from_faces(faces(image), faces(anchor_image), threshold=threshold)


# --------------------------------------------------------------------------------------------------- products


@dataclass(frozen=True, eq=False)
class ProductFeatures:
    """SIFT keypoints of one image at the matching scale: positions (N, 2) and descriptors (N, 128)."""

    points: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]
    """(width, height) of the image the points refer to (long side at most PRODUCT_MAX_SIDE)."""

    def __len__(self) -> int:
        return len(self.points)


def product_features(image: ImageInput) -> ProductFeatures:
    """SIFT keypoints and descriptors of the image reduced to PRODUCT_MAX_SIDE px, in grey."""
    import cv2

    rgb = load_rgb(image)
    height, width = rgb.shape[:2]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = _resize(grey, min(1.0, PRODUCT_MAX_SIDE / max(width, height)))
    sift = cv2.SIFT_create(nfeatures=PRODUCT_MAX_KEYPOINTS)
    keypoints, descriptors = sift.detectAndCompute(grey, None)
    if descriptors is None or not keypoints:
        points = np.zeros((0, 2), np.float32)
        descriptors = np.zeros((0, 128), np.float32)
    else:
        points = np.array([kp.pt for kp in keypoints], np.float32)
        descriptors = np.asarray(descriptors, np.float32)
    return ProductFeatures(points, descriptors, (grey.shape[1], grey.shape[0]))


@dataclass(frozen=True)
class ProductScore:
    """Whether the anchor's textured product appears in the image (see the module docstring)."""

    score: float
    """inliers / (inliers + PRODUCT_HALF_INLIERS), in [0, 1)."""
    same_product: bool
    threshold: float
    inliers: int
    """Ratio-test matches consistent with one homography (distinct positions)."""
    matches: int
    """Ratio-test matches, one per image keypoint."""
    anchor_keypoints: int
    keypoints: int
    """Keypoints in the candidate image."""
    reason: str | None = None
    box: tuple[float, float, float, float] | None = None
    """Where the inliers lie in the candidate (left, top, right, bottom) in the pixels of ``candidate.size`` (the
    matching scale): the product's place when the anchor shows the product alone, else the texture both share."""

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    @property
    def anchor_coverage(self) -> float:
        """Share of the anchor's keypoints found again (consistently) in the image."""
        return self.inliers / self.anchor_keypoints if self.anchor_keypoints else 0.0

    def to_metadata(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "same_product": self.same_product,
            "threshold": self.threshold,
            "inliers": self.inliers,
            "matches": self.matches,
            "anchor_keypoints": self.anchor_keypoints,
            "keypoints": self.keypoints,
            "reason": self.reason,
            "box": None if self.box is None else [round(v, 1) for v in self.box],
        }


def _plausible(homography: np.ndarray | None) -> bool:
    """A homography a real view change could give: finite, not mirrored, area change within 1/400..400."""
    if homography is None or not np.all(np.isfinite(homography)):
        return False
    det = float(np.linalg.det(homography[:2, :2]))
    return 1 / 400 < det < 400


def product_similarity_from_features(
    candidate: ProductFeatures, anchor: ProductFeatures, *, threshold: float = SAME_PRODUCT
) -> ProductScore:
    """``product_similarity`` over precomputed ``product_features()`` of each image."""
    import cv2

    def result(inliers: int, matches: int, reason: str | None = None, box=None) -> ProductScore:
        score = inliers / (inliers + PRODUCT_HALF_INLIERS)
        return ProductScore(
            score=score,
            same_product=score >= threshold,
            threshold=threshold,
            inliers=inliers,
            matches=matches,
            anchor_keypoints=len(anchor),
            keypoints=len(candidate),
            reason=reason,
            box=box,
        )

    if len(anchor) < PRODUCT_MIN_ANCHOR_KEYPOINTS:
        return result(
            0, 0, f"too few keypoints in the anchor image ({len(anchor)} < {PRODUCT_MIN_ANCHOR_KEYPOINTS}): textureless?"
        )
    if len(candidate) < 2:
        return result(0, 0, f"too few keypoints in the image ({len(candidate)}): textureless?")
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(anchor.descriptors, candidate.descriptors, k=2)
    best: dict[int, Any] = {}  # one match per candidate keypoint: the closest anchor keypoint
    for pair in pairs:
        if len(pair) == 2 and pair[0].distance < PRODUCT_RATIO * pair[1].distance:
            match = pair[0]
            kept = best.get(match.trainIdx)
            if kept is None or match.distance < kept.distance:
                best[match.trainIdx] = match
    matches = list(best.values())
    if len(matches) < 4:
        return result(0, len(matches), None if matches else "no matching keypoints")
    source = anchor.points[[m.queryIdx for m in matches]]
    target = candidate.points[[m.trainIdx for m in matches]]
    tolerance = 0.006 * max(candidate.size)  # 6 px at 1024 px
    homography, mask = cv2.findHomography(source, target, cv2.RANSAC, tolerance, maxIters=2000, confidence=0.995)
    if mask is None or not _plausible(homography):
        return result(0, len(matches), "no plausible geometric transform between the matches")
    inlier_points = target[mask.ravel().astype(bool)]
    inliers = len({(round(float(x)), round(float(y))) for x, y in inlier_points})
    if not len(inlier_points):
        return result(0, len(matches), "no plausible geometric transform between the matches")
    (left, top), (right, bottom) = inlier_points.min(axis=0), inlier_points.max(axis=0)
    return result(inliers, len(matches), box=(float(left), float(top), float(right), float(bottom)))


def product_similarity(image: ImageInput, anchor_image: ImageInput, *, threshold: float = SAME_PRODUCT) -> ProductScore:
    """Does the textured product of ``anchor_image`` appear in ``image``? Score in [0, 1), verdict at ``threshold``."""
    return product_similarity_from_features(product_features(image), product_features(anchor_image), threshold=threshold)
