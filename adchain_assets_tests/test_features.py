"""Image features computed once, stored under the image's sha256, and read (not recomputed) by later checks."""

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from upath import UPath

from adchain_assets.brief.model import load_brief
from adchain_assets.plan.references import Slot
from adchain_assets.vision import consistency, features
from adchain_assets.vision.features import FeatureStore, forget_memory
from adchain_assets.vision.scores import provenance_sha256, score_image, summary

FACES = Path(__file__).parent / "testdata" / "faces"


def png_of(name: str, size=None) -> bytes:
    with Image.open(FACES / name) as image:
        image = image.convert("RGB")
        if size:
            image = image.resize(size)
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def fresh_memory():
    forget_memory()
    yield
    forget_memory()


def test_faces_and_keypoints_survive_the_npz_round_trip_exactly():
    png = png_of("obama_and_biden.jpg")
    found = consistency.faces(png)
    assert len(found) >= 2
    assert features.faces_from_npz(features.faces_to_npz(found)) == tuple(found)
    assert features.faces_from_npz(features.faces_to_npz([])) == ()
    keypoints = consistency.product_features(png)
    back = features.product_from_npz(features.product_to_npz(keypoints))
    assert back.size == keypoints.size and len(back) == len(keypoints) > 100
    assert np.array_equal(back.points, keypoints.points) and np.array_equal(back.descriptors, keypoints.descriptors)


def test_features_are_computed_once_stored_by_sha256_and_read_by_a_later_process(tmp_path):
    png = png_of("leslie_1.jpg")
    digest = sha(png)
    first = FeatureStore(tmp_path)
    faces = first.faces(png)
    assert first.faces(png) == faces and first.computed == 1  # the second call: memory
    stored = tmp_path / "features" / f"v{features.FEATURES_VERSION}" / digest[:2] / f"{digest}.faces.npz"
    assert stored.is_file() and first.path(digest, "faces") == UPath(stored)
    assert not (stored.parent / f"{digest}.product.npz").exists()  # only what was asked for

    forget_memory()  # as another step process would see it
    later = FeatureStore(tmp_path)

    def must_not_load():
        raise AssertionError("the PNG was loaded although its features are stored")

    assert later.faces_of(digest, must_not_load) == faces
    assert later.computed == 0 and later.read == 1


def test_a_damaged_feature_file_is_recomputed_and_rewritten(tmp_path, caplog):
    png = png_of("biden_1.jpg")
    store = FeatureStore(tmp_path)
    product = store.product(png)
    path = Path(store.path(sha(png), "product"))
    path.write_bytes(b"not an npz")
    forget_memory()
    again = FeatureStore(tmp_path)
    assert np.array_equal(again.product(png).descriptors, product.descriptors)
    assert again.computed == 1 and "unreadable stored features" in caplog.text
    assert features.product_from_npz(path.read_bytes()).size == product.size


def test_features_work_on_a_non_local_file_system():
    png = png_of("obama_1.jpg", size=(320, 400))
    root = UPath("memory://adchain-features-test")
    store = FeatureStore(root)
    faces = store.faces(png)
    assert (root / "features" / f"v{features.FEATURES_VERSION}" / sha(png)[:2] / f"{sha(png)}.faces.npz").exists()
    forget_memory()
    assert FeatureStore(root).faces_of(sha(png), lambda: None) == faces


def test_an_image_that_does_not_match_the_sha_it_is_loaded_for_is_refused(tmp_path):
    with pytest.raises(ValueError, match="another sha256"):
        FeatureStore(tmp_path).faces_of("0" * 64, lambda: png_of("obama_1.jpg"))
    assert FeatureStore(tmp_path).faces_of("1" * 64, lambda: None) is None


def test_checks_read_the_anchors_features_from_storage_without_loading_their_pngs(tmp_path):
    """muse-portrait's character is anchored to the brief's photo; a stored predecessor gives the self distance."""
    data = Path(__file__).parents[1] / "data" / "briefs" / "muse-portrait.yaml"
    loaded = load_brief(data, max_scenes=8)
    images = {"reference/scene_1": png_of("leslie_2.jpg"), "reference/scene_2": png_of("leslie_1.jpg")}
    slot = Slot("reference", 2)
    expected = summary(score_image(loaded, slot, images[slot.key], images.get))  # memory only, PNGs passed in

    store = FeatureStore(tmp_path)
    score_image(loaded, Slot("reference", 1), images["reference/scene_1"], images.get, store=store)
    forget_memory()
    store = FeatureStore(tmp_path)
    loads = []

    def image_of(other):
        loads.append(other)
        return images.get(other)

    scores = score_image(loaded, slot, images[slot.key], image_of, store=store,
                         sha_of=lambda other: sha(images[other]) if other in images else None)
    assert summary(scores) == expected
    assert loads == [] and store.read >= 1
    character = [s for s in scores if s.kind == "character"]
    assert character and all(s.passed and "self" in s.detail for s in character)


def test_provenance_sha256_reads_the_json_beside_the_png(tmp_path):
    png = tmp_path / "scene_1.png"
    assert provenance_sha256(UPath(png)) is None
    png.with_suffix(".json").write_text('{"sha256": "%s"}' % ("a" * 64))
    assert provenance_sha256(UPath(png)) == "a" * 64
    png.with_suffix(".json").write_text("{broken")
    assert provenance_sha256(UPath(png)) is None


def test_prepare_computes_the_missing_kinds_side_by_side_and_each_equals_its_own_computation(tmp_path):
    png = png_of("obama_and_biden.jpg")
    store = FeatureStore(tmp_path)
    assert store.prepare(png, [features.FACES, features.PRODUCT]) == sha(png)
    assert store.computed == 2
    for kind in (features.FACES, features.PRODUCT):
        assert store.path(sha(png), kind).is_file()
    assert store.faces(png) == tuple(consistency.faces(png))
    expected = consistency.product_features(png)
    assert np.array_equal(store.product(png).descriptors, expected.descriptors)
    store.prepare(png, [features.FACES, features.PRODUCT], sha(png))
    assert store.computed == 2  # held already: nothing computed again

    other = png_of("leslie_1.jpg")
    store.prepare(other, [features.PRODUCT])
    assert store.computed == 3 and not store.path(sha(other), features.FACES).exists()  # only what was asked for
