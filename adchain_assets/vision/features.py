"""Image features for the consistency checks, computed once per image and kept beside the images.

An image's *features* are what the checks compare: its faces (boxes, 128-d dlib descriptors, detector
confidences) and its product keypoints (SIFT positions and descriptors at the matching scale), as
:func:`adchain_assets.vision.consistency.faces` and :func:`~adchain_assets.vision.consistency.product_features` compute them.
They depend on the pixels only (never on a brief's thresholds), so they are keyed by the image's sha256 and
stored under the storage root::

    <storage root>/features/v<FEATURES_VERSION>/<sha[:2]>/<sha>.faces.npz
    <storage root>/features/v<FEATURES_VERSION>/<sha[:2]>/<sha>.product.npz

Each kind is computed the first time a check needs it (an image of a product-only scene never gets its faces
detected unless a later check asks), written atomically with
:func:`adchain_assets.store.files.write_atomically` and read through ``UPath``, so it works on a local folder and on
object storage alike. Every later check of every process reads the stored file instead of recomputing; a
process also keeps the last :data:`MEMORY_ENTRIES` results in memory, by sha256 whatever the storage root, so
scoring the kept candidate of a best-of-N take again costs only the matching (features found in memory for
another root are written under this one too).

What it cannot do: it never checks that a stored file was made from the pixels its name says (it trusts its
own writes; a file that cannot be read as features is recomputed and rewritten, never an error), and it never
removes files: features of images nobody keeps any more stay until the folder is deleted (a few hundred
kilobytes per image at most). Bump :data:`FEATURES_VERSION` when ``consistency`` changes what it computes;
old versions are then ignored.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence, TypeVar, Union

import numpy as np
from upath import UPath

from adchain_assets.store.files import write_atomically
from adchain_assets.vision import consistency
from adchain_assets.vision.consistency import Box, Face, ProductFeatures

logger = logging.getLogger(__name__)

FEATURES_VERSION = 1
MEMORY_ENTRIES = 128
FACES, PRODUCT = "faces", "product"

T = TypeVar("T")


def load_models() -> None:
    """Load the face models now (once per process): what a forkserver preloads so every step forks with them."""
    consistency.load_models()


# ------------------------------------------------------------------------------------------ serialisation


def faces_to_npz(faces: Sequence[Face]) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        boxes=np.array([list(f.box) for f in faces], dtype=np.int64).reshape(-1, 4),
        descriptors=np.array([f.descriptor for f in faces], dtype=np.float64).reshape(-1, 128),
        confidences=np.array([f.confidence for f in faces], dtype=np.float64),
    )
    return buffer.getvalue()


def faces_from_npz(data: bytes) -> tuple[Face, ...]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        boxes, descriptors, confidences = npz["boxes"], npz["descriptors"], npz["confidences"]
    if not (len(boxes) == len(descriptors) == len(confidences)) or descriptors.shape[1:] != (128,):
        raise ValueError("inconsistent face arrays")
    return tuple(
        Face(Box(*(int(v) for v in box)), tuple(float(v) for v in descriptor), float(confidence))
        for box, descriptor, confidence in zip(boxes, descriptors, confidences)
    )


def product_to_npz(features: ProductFeatures) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        points=np.asarray(features.points, np.float32).reshape(-1, 2),
        descriptors=np.asarray(features.descriptors, np.float32).reshape(-1, 128),
        size=np.array(features.size, dtype=np.int64),
    )
    return buffer.getvalue()


def product_from_npz(data: bytes) -> ProductFeatures:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        points, descriptors, size = npz["points"], npz["descriptors"], npz["size"]
    if len(points) != len(descriptors) or points.shape[1:] != (2,) or descriptors.shape[1:] != (128,) or size.shape != (2,):
        raise ValueError("inconsistent keypoint arrays")
    return ProductFeatures(points, descriptors, (int(size[0]), int(size[1])))


_CODECS: dict[str, tuple[Callable, Callable, Callable]] = {
    FACES: (lambda png: tuple(consistency.faces(png)), faces_to_npz, faces_from_npz),
    PRODUCT: (consistency.product_features, product_to_npz, product_from_npz),
}


# ------------------------------------------------------------------------------------------------ the store


class FeatureStore:
    """Features of images by sha256: memory, then ``<root>/features/``, else computed once and stored.

    ``root`` is the storage root (a local folder or an ``s3://`` / ``gs://`` URL, as ``UPath`` takes it);
    ``None`` keeps features in this process's memory only.
    """

    def __init__(self, root: Union[str, UPath, None]):
        self.root = None if root is None else UPath(root) / "features" / f"v{FEATURES_VERSION}"
        self.computed = 0  # features computed by this store (not read): what tests and the benchmark count
        self.read = 0

    def path(self, sha: str, kind: str) -> Optional[UPath]:
        if self.root is None:
            return None
        return self.root / sha[:2] / f"{sha}.{kind}.npz"

    def faces(self, png: bytes, sha: Optional[str] = None) -> tuple[Face, ...]:
        return self._get(FACES, png, sha)

    def product(self, png: bytes, sha: Optional[str] = None) -> ProductFeatures:
        return self._get(PRODUCT, png, sha)

    def prepare(self, png: bytes, kinds: Sequence[str], sha: Optional[str] = None) -> str:
        """Make sure every kind in ``kinds`` is held for ``png``, computing the missing ones at the same time
        (dlib's face search and OpenCV's SIFT each run in their own thread; SIFT releases the GIL, so on two
        cores a new image's features take as long as the slower kind: 0.48 -> 0.37 s on a faceless
        1344x768 frame). Returns the image's sha256."""
        sha = sha or hashlib.sha256(png).hexdigest()
        kinds = list(dict.fromkeys(kinds))
        if len(kinds) < 2:
            for kind in kinds:
                self._get(kind, png, sha)
            return sha
        with ThreadPoolExecutor(max_workers=len(kinds) - 1, thread_name_prefix="features") as pool:
            later = [pool.submit(self._get, kind, png, sha) for kind in kinds[1:]]
            self._get(kinds[0], png, sha)
            for future in later:
                future.result()
        return sha

    def faces_of(self, sha: str, load_png: Callable[[], Optional[bytes]]) -> Optional[tuple[Face, ...]]:
        """Faces of the image ``sha``; its PNG is loaded (by ``load_png``) only when they are not stored yet."""
        return self._get_lazy(FACES, sha, load_png)

    def product_of(self, sha: str, load_png: Callable[[], Optional[bytes]]) -> Optional[ProductFeatures]:
        return self._get_lazy(PRODUCT, sha, load_png)

    # -- internals

    def _get(self, kind: str, png: bytes, sha: Optional[str]):
        sha = sha or hashlib.sha256(png).hexdigest()
        return self._get_lazy(kind, sha, lambda: png)

    def _get_lazy(self, kind: str, sha: str, load_png: Callable[[], Optional[bytes]]):
        key = (kind, sha)
        compute, encode, decode = _CODECS[kind]
        path = self.path(sha, kind)
        found = _memory.get(key)
        if found is not None:
            if path is not None and _memory.first_seen_under(key, self.root):
                self._keep(path, encode(found))  # made from the same pixels for another storage root of this process
            return found
        if path is not None:
            try:
                value = decode(path.read_bytes())
            except FileNotFoundError:
                pass
            except Exception as error:  # noqa: BLE001 - a damaged file is recomputed and rewritten
                logger.warning("%s: unreadable stored features (%s); computing them again", path, error)
            else:
                self.read += 1
                _memory.put(key, self.root, value)
                return value
        png = load_png()
        if png is None:
            return None
        if hashlib.sha256(png).hexdigest() != sha:
            raise ValueError(f"features of {sha[:12]}: the image loaded for them has another sha256")
        value = compute(png)
        self.computed += 1
        if path is not None:
            self._keep(path, encode(value))
        _memory.put(key, self.root, value)
        return value

    @staticmethod
    def _keep(path: UPath, data: bytes) -> None:
        try:
            write_atomically(path, data)
        except OSError as error:  # features are a cache: failing to keep them only costs time later
            logger.warning("could not store features %s: %s", path, error)


class _Memory:
    """The last few features of this process, by kind and sha256 (features depend on the pixels only), with the
    storage roots they are known to be kept under; thread-safe."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()  # key -> (value, set of roots)
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        return None

    def first_seen_under(self, key, root) -> bool:
        """True the first time ``key`` is asked for under ``root`` (the caller then keeps it there too)."""
        with self._lock:
            roots = self._items[key][1] if key in self._items else None
            if roots is None or str(root) in roots:
                return False
            roots.add(str(root))
            return True

    def put(self, key, root, value) -> None:
        with self._lock:
            self._items[key] = (value, {str(root)})
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_memory = _Memory(MEMORY_ENTRIES)


def forget_memory() -> None:
    """Drop this process's in-memory features (tests use it to show what is read from storage)."""
    _memory.clear()
