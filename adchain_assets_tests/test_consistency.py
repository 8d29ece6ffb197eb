"""The consistency scorer on real photos (faces) and on rendered product shots (products).

Faces: the photos in testdata/faces (see its SOURCE.md), five people with two or three photos each and one photo of
two people. Descriptors are computed once per image variant for the whole session (``face_cache``).

Products: a perfume bottle with a printed label is rendered with Pillow and placed, rotated, scaled, tinted, blurred,
JPEG-compressed, warped and partly covered, on the face photos as backgrounds; other bottles and labels are the
negatives. The threshold PRODUCT_HALF_INLIERS = 25 sits between the fewest inliers of a same-product view and the most
of a different product (``test_product_threshold_has_a_margin_both_sides``).
"""

from __future__ import annotations

import io
import itertools
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from adchain_assets.vision import consistency
from adchain_assets.vision.consistency import (
    PRODUCT_HALF_INLIERS,
    SAME_PERSON,
    SAME_PRODUCT,
    Box,
    Face,
    face_distance,
    faces,
    identity,
    identity_from_faces,
    load_rgb,
    product_features,
    product_similarity,
    product_similarity_from_features,
)

FACES = Path(__file__).parent / "testdata" / "faces"
PHOTOS = sorted(path.stem for path in FACES.glob("*.jpg") if "_and_" not in path.stem)
TWO_PEOPLE = "obama_and_biden"


def person(photo: str) -> str:
    return photo.rsplit("_", 1)[0]


def photo_bytes(photo: str) -> bytes:
    return (FACES / f"{photo}.jpg").read_bytes()


def photo_image(photo: str) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(FACES / f"{photo}.jpg")).convert("RGB")


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def gradient_png(size: tuple[int, int] = (640, 480)) -> bytes:
    """A plain colour ramp: no face, no texture."""
    width, height = size
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    rgb = np.stack([60 + 150 * x + 0 * y, 90 + 100 * y + 0 * x, 200 - 80 * x * y], axis=2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def test_testdata_is_complete():
    assert len(PHOTOS) == 11 and len({person(p) for p in PHOTOS}) == 5
    assert (FACES / f"{TWO_PEOPLE}.jpg").is_file()
    assert "copied" in (FACES / "SOURCE.md").read_text().lower()


# ------------------------------------------------------------------------------------------------ face variants


def _crop_around_face(image: Image.Image, box: Box) -> Image.Image:
    """A crop that keeps the face and about one face size of margin around it (reframes the shot)."""
    w, h = box.width, box.height
    left, top = max(0, box.left - w), max(0, box.top - round(0.8 * h))
    return image.crop((left, top, min(image.width, box.right + w), min(image.height, box.bottom + 2 * h)))


def _warm(image: Image.Image) -> Image.Image:
    r, g, b = image.split()
    return Image.merge("RGB", (r.point(lambda v: min(255, round(v * 1.15 + 10))), g, b.point(lambda v: round(v * 0.78))))


VARIANTS: dict[str, Callable[[Image.Image, Box], Image.Image | bytes]] = {
    "half_size": lambda im, box: im.resize((im.width // 2, im.height // 2), Image.BICUBIC),
    "double_size": lambda im, box: im.resize((im.width * 2, im.height * 2), Image.BICUBIC),
    # the whole photo shrunk until the face is 40 px wide: found only by upscaling for the detector
    "face_40px": lambda im, box: im.resize(
        (round(im.width * 40 / box.width), round(im.height * 40 / box.width)), Image.LANCZOS
    ),
    "crop": _crop_around_face,
    "warm_tint": lambda im, box: _warm(im),
    "contrast_saturation": lambda im, box: ImageEnhance.Color(ImageEnhance.Contrast(im).enhance(1.4)).enhance(1.6),
    "dark_desaturated": lambda im, box: ImageEnhance.Brightness(ImageEnhance.Color(im).enhance(0.4)).enhance(0.6),
    "greyscale": lambda im, box: im.convert("L"),
    "jpeg_q40": lambda im, box: jpeg_bytes(im, 40),
}


class FaceCache:
    """faces() of each photo and photo variant, computed at most once per session."""

    def __init__(self) -> None:
        self._faces: dict[tuple[str, str], list[Face]] = {}
        self._lock = threading.RLock()

    def __call__(self, photo: str, variant: str = "original") -> list[Face]:
        key = (photo, variant)
        with self._lock:
            if key not in self._faces:
                if variant == "original":
                    self._faces[key] = faces(photo_bytes(photo))
                else:
                    main = self(photo)[0]
                    self._faces[key] = faces(VARIANTS[variant](photo_image(photo), main.box))
            return self._faces[key]


@pytest.fixture(scope="session")
def face_cache() -> FaceCache:
    return FaceCache()


# ------------------------------------------------------------------------------------------------ faces


@pytest.mark.parametrize("photo", PHOTOS + [TWO_PEOPLE])
def test_faces_are_found_largest_first_with_128d_descriptors(face_cache, photo):
    found = face_cache(photo)
    expected = 3 if photo == TWO_PEOPLE else 1  # obama_and_biden: two people and a small background face
    assert len(found) == expected
    width, height = photo_image(photo).size
    for face in found:
        assert len(face.descriptor) == 128 and all(isinstance(v, float) for v in face.descriptor)
        assert 0 <= face.box.left < face.box.right <= width and 0 <= face.box.top < face.box.bottom <= height
    assert [f.box.area for f in found] == sorted((f.box.area for f in found), reverse=True)


PAIRS = list(itertools.combinations(PHOTOS, 2))


def test_all_55_pairs_are_covered():
    assert len(PAIRS) == 55
    assert sum(person(a) == person(b) for a, b in PAIRS) == 7


@pytest.mark.parametrize("a, b", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_pair_classified_at_the_threshold(face_cache, a, b):
    score = identity_from_faces(face_cache(a), face_cache(b))
    assert score.found and score.reason is None
    assert score.threshold == SAME_PERSON == 0.6
    assert score.same_person == (person(a) == person(b)), f"{a} vs {b}: distance {score.distance:.3f}"
    assert score.distance == pytest.approx(face_distance(face_cache(a)[0], face_cache(b)[0]))


def test_pairwise_distances_leave_a_margin(face_cache):
    same = [face_distance(face_cache(a)[0], face_cache(b)[0]) for a, b in PAIRS if person(a) == person(b)]
    different = [face_distance(face_cache(a)[0], face_cache(b)[0]) for a, b in PAIRS if person(a) != person(b)]
    # measured: same 0.33-0.44, different 0.70 and above
    assert max(same) < SAME_PERSON - 0.1 < SAME_PERSON + 0.05 < min(different)


def test_identity_over_image_bytes_matches_the_cached_faces(face_cache):
    score = identity(photo_bytes("obama_2"), photo_bytes("obama_1"))
    assert score.found and score.same_person and score.face_count == 1 and score.anchor_face_count == 1
    assert score.distance == pytest.approx(face_distance(face_cache("obama_2")[0], face_cache("obama_1")[0]), abs=1e-6)
    assert score.face == face_cache("obama_2")[0] and score.anchor_face == face_cache("obama_1")[0]
    different = identity(photo_bytes("leslie_1"), photo_bytes("obama_1"))
    assert different.found and not different.same_person and different.distance > SAME_PERSON


VARIANT_CASES = [(photo, variant) for variant in VARIANTS for photo in PHOTOS]


@pytest.mark.parametrize("photo, variant", VARIANT_CASES, ids=[f"{v}-{p}" for p, v in VARIANT_CASES])
def test_verdict_stable_under_image_edits(face_cache, photo, variant):
    """The edited photo vs every other photo, both ways round: same person below 0.6, everyone else above."""
    edited = face_cache(photo, variant)
    assert edited, f"no face found in {variant} {photo}"
    assert identity_from_faces(edited, face_cache(photo)).same_person
    wrong = []
    for other in PHOTOS:
        if other == photo:
            continue
        for score in (identity_from_faces(edited, face_cache(other)), identity_from_faces(face_cache(other), edited)):
            assert score.found
            if score.same_person != (person(other) == person(photo)):
                wrong.append(f"{other}: {score.distance:.3f}")
    assert not wrong, f"{variant} {photo} misjudged against {wrong}"


# ------------------------------------------------------------------------------------------------ several faces


@pytest.mark.parametrize("anchor", ["obama_1", "obama_2", "obama_3", "biden_1", "biden_2"])
def test_two_people_photo_finds_the_anchors_face(face_cache, anchor):
    """Candidate with several faces: the face closest to the anchor's face is taken, and the count is reported."""
    score = identity_from_faces(face_cache(TWO_PEOPLE), face_cache(anchor))
    assert score.found and score.same_person and score.face_count == 3 and score.anchor_face_count == 1
    # Biden stands left of Obama in the photo
    if person(anchor) == "biden":
        assert score.face.box.right < 1100
    else:
        assert score.face.box.left > 1000
    assert score.face in face_cache(TWO_PEOPLE)


@pytest.mark.parametrize("anchor", ["harington_1", "leslie_2", "lacamoire_1"])
def test_two_people_photo_is_not_someone_else(face_cache, anchor):
    score = identity_from_faces(face_cache(TWO_PEOPLE), face_cache(anchor))
    assert score.found and not score.same_person and score.face_count == 3


def test_two_people_photo_through_identity_on_bytes():
    obama = identity(photo_bytes(TWO_PEOPLE), photo_bytes("obama_1"))
    biden = identity(photo_bytes(TWO_PEOPLE), photo_bytes("biden_1"))
    assert obama.same_person and biden.same_person
    assert obama.face_count == biden.face_count == 3
    assert obama.face.box != biden.face.box
    assert obama.face.box.left > biden.face.box.right  # Obama stands right of Biden


def test_two_people_photo_as_anchor_uses_its_largest_face(face_cache):
    group = face_cache(TWO_PEOPLE)
    largest = group[0]
    score = identity_from_faces(face_cache("biden_2"), group)
    assert score.anchor_face == largest and score.anchor_face_count == 3
    # the largest of the group is Biden's (his box is the larger one): biden_2 is the same person, obama_1 is not
    assert score.same_person
    assert not identity_from_faces(face_cache("obama_1"), group).same_person


# ------------------------------------------------------------------------------------------------ no face


def test_no_face_is_a_result_not_an_error(face_cache):
    blank = gradient_png()
    assert faces(blank) == []
    score = identity(blank, photo_bytes("obama_1"))
    assert not score.found and not score.same_person and score.distance is None
    assert score.face_count == 0 and score.anchor_face_count == 1
    assert score.reason == "no face found in image"
    anchorless = identity_from_faces(face_cache("obama_1"), [])
    assert not anchorless.found and anchorless.reason == "no face found in anchor image"
    neither = identity_from_faces([], [])
    assert not neither.found and neither.reason == "no face found in image nor in anchor image"
    assert neither.to_metadata()["reason"] == neither.reason


def test_tiny_image_without_face():
    assert faces(Image.new("RGB", (8, 8), (120, 30, 30))) == []


# ------------------------------------------------------------------------------------------------ inputs


def test_every_input_form_gives_the_same_faces(face_cache):
    path = FACES / "harington_2.jpg"
    expected = face_cache("harington_2")
    image = photo_image("harington_2")
    for form in (path, str(path), path.read_bytes(), bytearray(path.read_bytes()), image, np.asarray(image)):
        found = faces(form)
        assert len(found) == 1 and found[0].box == expected[0].box
        assert face_distance(found[0], expected[0]) < 1e-6


def test_exif_orientation_is_applied(face_cache):
    upright = photo_image("leslie_2")
    stored_sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    stored_sideways.save(buffer, "JPEG", quality=95, exif=exif)
    assert load_rgb(buffer.getvalue()).shape[:2] == (upright.height, upright.width)
    found = faces(buffer.getvalue())
    assert len(found) == 1 and face_distance(found[0], face_cache("leslie_2")[0]) < 0.15


def test_transparent_png_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    assert (load_rgb(buffer.getvalue()) == 255).all()
    with pytest.raises(TypeError):
        load_rgb(12345)  # type: ignore[arg-type]


def test_faces_is_thread_safe(face_cache):
    photos = ["harington_2", "leslie_2", "harington_1", "leslie_2"]
    images = [photo_bytes(p) for p in photos]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(faces, images))
    for photo, found in zip(photos, results):
        assert len(found) == 1 and face_distance(found[0], face_cache(photo)[0]) < 1e-6


def test_identity_metadata_is_plain():
    score = identity(photo_bytes("harington_2"), photo_bytes("harington_1"))
    meta = score.to_metadata()
    assert meta["same_person"] is True and meta["face_count"] == 1 and len(meta["face_box"]) == 4
    assert isinstance(meta["distance"], float)


# ------------------------------------------------------------------------------------------------ products

SCENE = 1024


def _label(name: str, subtitle: str, seed: int, paper: tuple[int, int, int]) -> Image.Image:
    """A printed label: random rings, strokes and triangles, a name and a subtitle in a frame."""
    rng = random.Random(seed)
    art = Image.new("RGB", (260, 300), paper)
    draw = ImageDraw.Draw(art)
    for _ in range(60):
        x, y, r = rng.randint(0, 260), rng.randint(0, 300), rng.randint(3, 16)
        colour = tuple(rng.randint(0, 200) for _ in range(3))
        kind = rng.random()
        if kind < 0.33:
            draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=2)
        elif kind < 0.66:
            draw.line((x, y, x + rng.randint(-30, 30), y + rng.randint(-30, 30)), fill=colour, width=3)
        else:
            draw.polygon([(x, y), (x + r, y + 2 * r), (x - r, y + 2 * r)], fill=colour)
    draw.text((130, 110), name, font=ImageFont.load_default(size=44), fill=(20, 20, 60), anchor="mm")
    draw.text((130, 170), subtitle, font=ImageFont.load_default(size=18), fill=(90, 20, 20), anchor="mm")
    draw.rectangle((8, 8, 252, 292), outline=(150, 110, 40), width=3)
    return art


def bottle(
    name: str,
    subtitle: str,
    seed: int,
    paper: tuple[int, int, int] = (245, 240, 225),
    glass: tuple[int, int, int] = (200, 170, 120),
    shape: str = "square",
    label: bool = True,
) -> Image.Image:
    """A perfume bottle (RGBA, transparent around it): body, neck, cap and, unless ``label=False``, a label."""
    image = Image.new("RGBA", (360, 640), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if shape == "square":
        draw.rounded_rectangle((20, 180, 340, 630), radius=60, fill=glass + (255,), outline=(60, 40, 20, 255), width=4)
        draw.rectangle((140, 90, 220, 190), fill=glass + (255,))
        draw.rounded_rectangle((115, 10, 245, 100), radius=14, fill=(30, 30, 30, 255))
    else:
        draw.ellipse((10, 160, 350, 635), fill=glass + (255,), outline=(20, 40, 60, 255), width=4)
        draw.rectangle((150, 60, 210, 200), fill=glass + (255,))
        draw.ellipse((120, 0, 240, 90), fill=(180, 160, 40, 255))
    if label:
        image.paste(_label(name, subtitle, seed, paper), (50, 260))
    return image


def gradient(colour: tuple[int, int, int] = (235, 235, 240)) -> Image.Image:
    ramp = 0.85 + 0.15 * np.linspace(0, 1, SCENE)[None, :, None]
    return Image.fromarray((np.array(colour) * ramp * np.ones((SCENE, 1, 1))).astype(np.uint8))


def backdrop(photo: str) -> Image.Image:
    return photo_image(photo).resize((SCENE, SCENE), Image.BICUBIC)


def place(obj: Image.Image, background: Image.Image, *, scale=1.0, angle=0.0, at=(330, 190), perspective=0.0):
    """``obj`` (RGBA) scaled, optionally perspective-warped, rotated, pasted onto a copy of ``background``."""
    import cv2

    obj = obj.resize((round(obj.width * scale), round(obj.height * scale)), Image.LANCZOS)
    if perspective:
        w, h = obj.size
        source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        target = np.float32([[0, h * perspective], [w, 0], [w, h], [0, h * (1 - perspective)]])
        warp = cv2.getPerspectiveTransform(source, target)
        obj = Image.fromarray(cv2.warpPerspective(np.asarray(obj), warp, (w, h), flags=cv2.INTER_LINEAR), "RGBA")
    obj = obj.rotate(angle, expand=True, resample=Image.BICUBIC)
    scene = background.convert("RGB")
    scene.paste(obj, at, obj)
    return scene


def _graded(image: Image.Image) -> Image.Image:
    return ImageEnhance.Color(ImageEnhance.Contrast(_warm(image)).enhance(1.3)).enhance(1.4)


def _channel_swap(image: Image.Image) -> Image.Image:
    r, g, b = image.split()
    return Image.merge("RGB", (b, r, g))


def _covered(image: Image.Image, box) -> Image.Image:
    image = image.copy()
    ImageDraw.Draw(image).rectangle(box, fill=(40, 80, 40))
    return image


# A product and the views of it that a generated scene might give.
PRODUCT = dict(name="LUMIERE", subtitle="EAU DE PARFUM 50 ml", seed=1)
VIEWS: dict[str, Callable[[Image.Image], Image.Image | bytes]] = {
    "rotated_graded_on_leslie": lambda o: _graded(place(o, backdrop("leslie_1"), scale=0.7, angle=12, at=(500, 300))),
    "small_on_obama": lambda o: place(o, backdrop("obama_3"), scale=0.45, angle=-8, at=(200, 500)),
    "tiny_on_biden": lambda o: place(o, backdrop("biden_2"), scale=0.3, angle=5, at=(700, 650)),
    "large_on_blue": lambda o: place(o, gradient((200, 220, 240)), scale=1.3, at=(250, 80)),
    "rotated_30_on_harington": lambda o: place(o, backdrop("harington_2"), scale=0.8, angle=30, at=(100, 100)),
    "perspective_on_lacamoire": lambda o: place(o, backdrop("lacamoire_2"), scale=0.8, perspective=0.15, at=(380, 250)),
    "blurred_jpeg_q40": lambda o: jpeg_bytes(
        place(o, backdrop("obama_2"), scale=0.6, angle=-15, at=(400, 300)).filter(ImageFilter.GaussianBlur(1.5)), 40
    ),
    "recoloured": lambda o: _channel_swap(place(o, backdrop("leslie_2"), scale=0.9, angle=3, at=(300, 200))),
    "half_label_covered": lambda o: _covered(place(o, backdrop("obama_1"), scale=0.8, at=(300, 200)), (300, 420, 600, 520)),
    "upside_down": lambda o: place(o, gradient(), scale=0.8, angle=180, at=(300, 200)),
}
# Other products: another bottle and label, and two labels on the very same bottle (the hard ones).
OTHERS = {
    "other_bottle_other_label": dict(
        name="NOCTURNE", subtitle="EAU DE TOILETTE 100 ml", seed=2, paper=(225, 235, 245), glass=(150, 190, 210), shape="round"
    ),
    "same_bottle_other_label": dict(name="SOLSTICE", subtitle="PARFUM INTENSE 30 ml", seed=3),
    "same_bottle_similar_name": dict(name="LUMINA", subtitle="EAU DE PARFUM 50 ml", seed=5),
}


class ProductCache:
    """product_features() of each rendered scene, computed at most once per session."""

    def __init__(self) -> None:
        self._features: dict[tuple[str, str], consistency.ProductFeatures] = {}

    def anchor(self) -> consistency.ProductFeatures:
        return self.get("anchor", "plain", lambda: place(bottle(**PRODUCT), gradient()))

    def view(self, product: str, view: str) -> consistency.ProductFeatures:
        spec = PRODUCT if product == "product" else OTHERS[product]
        return self.get(product, view, lambda: VIEWS[view](bottle(**spec)))

    def get(self, product: str, view: str, make) -> consistency.ProductFeatures:
        if (product, view) not in self._features:
            self._features[(product, view)] = product_features(make())
        return self._features[(product, view)]


@pytest.fixture(scope="session")
def product_cache() -> ProductCache:
    return ProductCache()


@pytest.mark.parametrize("view", VIEWS)
def test_same_product_is_recognised(product_cache, view):
    score = product_similarity_from_features(product_cache.view("product", view), product_cache.anchor())
    assert score.same_product and score.score >= SAME_PRODUCT, f"{view}: {score}"
    assert score.inliers >= PRODUCT_HALF_INLIERS and 0 <= score.score < 1


OTHER_CASES = [(other, view) for other in OTHERS for view in VIEWS]


@pytest.mark.parametrize("other, view", OTHER_CASES, ids=[f"{o}-{v}" for o, v in OTHER_CASES])
def test_other_product_is_rejected(product_cache, other, view):
    score = product_similarity_from_features(product_cache.view(other, view), product_cache.anchor())
    assert not score.same_product and score.score < SAME_PRODUCT, f"{other} {view}: {score}"


@pytest.mark.parametrize("photo", ["leslie_1", "obama_3", "biden_2", "harington_2", "lacamoire_2"])
def test_scene_without_the_product_is_rejected(product_cache, photo):
    score = product_similarity_from_features(product_features(backdrop(photo)), product_cache.anchor())
    assert not score.same_product and score.inliers <= 5


def test_product_threshold_has_a_margin_both_sides(product_cache):
    anchor = product_cache.anchor()
    same = [product_similarity_from_features(product_cache.view("product", v), anchor).inliers for v in VIEWS]
    other = [product_similarity_from_features(product_cache.view(o, v), anchor).inliers for o, v in OTHER_CASES]
    # measured: same product 38-220 inliers, other products 0-17
    assert min(same) >= 1.4 * PRODUCT_HALF_INLIERS
    assert max(other) <= PRODUCT_HALF_INLIERS / 1.4
    assert sorted(same)[len(same) // 2] > 3 * PRODUCT_HALF_INLIERS  # most views are far above the threshold


def test_same_bottle_other_label_in_the_anchors_own_framing_is_the_known_hard_case(product_cache):
    """Same bottle, same label frame, same background and pose: only the label's content differs.

    The shared bottle outline, cap and frame give inliers of their own (about 35, near the threshold): the score is
    far below that of the product itself in that framing, but the verdict is not to be trusted here.
    """
    anchor = product_cache.anchor()
    itself = product_similarity_from_features(
        product_cache.get("product", "anchor_framing", lambda: place(bottle(**PRODUCT), gradient(), at=(332, 192))), anchor
    )
    hard = product_similarity_from_features(
        product_cache.get("hard", "anchor_framing", lambda: place(bottle(**OTHERS["same_bottle_other_label"]), gradient())),
        anchor,
    )
    assert itself.inliers > 5 * hard.inliers
    assert hard.score < itself.score - 0.3


# real-photo "products": crops of the face photos, printed on a card and placed into another photo
CROPS = {
    "obama_1_flag": ("obama_1", (0, 0, 300, 600)),
    "obama_2_flag": ("obama_2", (0, 0, 300, 600)),
    "obama_3_chandelier": ("obama_3", (300, 0, 1100, 500)),
    "lacamoire_1_jacket": ("lacamoire_1", (150, 600, 750, 1200)),
}


def card(crop: str) -> Image.Image:
    photo, box = CROPS[crop]
    image = photo_image(photo).crop(box)
    return image.resize((360, round(image.height * 360 / image.width)), Image.LANCZOS).convert("RGBA")


@pytest.fixture(scope="session")
def photo_products() -> dict[str, tuple[consistency.ProductFeatures, consistency.ProductFeatures]]:
    """For each crop: (anchor = the card on a plain backdrop, scene = the card tilted, graded, in leslie_2)."""
    return {
        crop: (
            product_features(place(card(crop), gradient(), at=(330, 200))),
            product_features(_graded(place(card(crop), backdrop("leslie_2"), scale=0.7, angle=15, at=(450, 300)))),
        )
        for crop in CROPS
    }


@pytest.mark.parametrize("anchor, scene", list(itertools.product(CROPS, CROPS)))
def test_real_photo_product_in_another_scene(photo_products, anchor, scene):
    score = product_similarity_from_features(photo_products[scene][1], photo_products[anchor][0])
    assert score.same_product == (anchor == scene), f"{anchor} in {scene}: {score}"


def test_product_similarity_on_encoded_images():
    anchor_png = io.BytesIO()
    place(bottle(**PRODUCT), gradient()).save(anchor_png, "PNG")
    scene = VIEWS["blurred_jpeg_q40"](bottle(**PRODUCT))
    assert isinstance(scene, bytes)
    score = product_similarity(scene, anchor_png.getvalue())
    assert score.same_product and score.score == pytest.approx(score.inliers / (score.inliers + PRODUCT_HALF_INLIERS))
    assert score.to_metadata()["same_product"] is True
    assert 0 < score.inlier_ratio <= 1 and 0 < score.anchor_coverage <= 1


def test_textureless_anchor_is_a_result_not_an_error():
    plain_bottle = place(bottle(**PRODUCT, label=False), Image.new("RGB", (SCENE, SCENE), "white"))
    score = product_similarity(VIEWS["small_on_obama"](bottle(**PRODUCT)), plain_bottle)
    assert not score.same_product and score.score == 0 and score.inliers == 0
    assert "anchor" in score.reason and "keypoints" in score.reason


def test_blank_image_is_a_result_not_an_error(product_cache):
    score = product_similarity_from_features(product_features(gradient_png()), product_cache.anchor())
    assert not score.same_product and score.score == 0 and score.reason
