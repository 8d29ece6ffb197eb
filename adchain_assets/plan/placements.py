"""Placements: the shapes a brief asks for beyond its master ``aspect_ratio`` (``placements: ["9:16", "1:1"]``),
and every output of each. Pure: names, order, parents, what each frame is shown and its prompt, where each clip
comes from.

Names. A placement's outputs are the master's, below ``placements/<W>x<H>/``: ``placements/9x16/start/scene_2``,
``placements/9x16/end/scene_2``, ``placements/9x16/clip/scene_2``, ``placements/9x16/ad`` and
``placements/9x16/storyboard``; their files have the master's layout below ``campaigns/<c>/placements/9x16/``. Only
start and end frames have placements (the clips need them); reference images do not.

Frames. A placement frame is recomposed from its master frame by the image model: it is shown the master frame,
then (``sheets`` mode) the sheets of the scene's subjects as far as the model's limits allow (the master frame is
always kept, then the characters' sheets, then the products'), and its prompt asks for the same moment, subjects,
wardrobe, light and palette in the new shape, extending the scene rather than cropping a face or the product
(Google's editing guidance: change one thing, "keep everything else the same"). It is one call per placement
frame (``takes_per_image`` applies to the master images: what a placement frame shows is fixed by its master).

Clips. When the video model makes the placement's shape (the offline ``preview`` makes any; Veo makes 16:9 and
9:16, from the catalogue), the clip is made from the placement's own frames. Otherwise it is cropped from the clip
of the closest shape the model makes among the master and the placements: closest by the distance of the
log width/height ratios, a tie going to the taller shape (a square or 4:5 window then slides up and down a portrait
frame, whose recomposed subjects are stacked in its middle, instead of across a wide frame that spreads them side
by side: 1:1 in a 16:9 campaign with a 9:16 placement is cropped from the 9:16 clip). The crop's window is chosen
when it is made (``media/crop.py``) from the faces of the source clip's two frames and the product boxes their
provenance records; its request is the source clip, those frames and the shape.

What it cannot do: recompose a reference image (none is made per placement), or crop a clip whose window cannot
hold every face (that clip fails, naming why; see ``defs/placement_clips.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from adchain_assets.brief.model import Brief
from adchain_assets.plan.catalogue import catalogue, model_entry
from adchain_assets.plan.prompts import ComposedPrompt, SubjectLine, describe_reference
from adchain_assets.plan.references import ReferenceLimits, Slot, sheet_output

PLACEMENTS = "placements"  # the placement assets' group, and the folder of their files
PLACEMENT_CHAINS = ("start", "end")
CROP_CODE_VERSION = "1"
# What a video model the catalogue does not know is taken to make: Veo's two shapes.
UNKNOWN_VIDEO_MODEL_SHAPES = ("16:9", "9:16")
# The frame to recompose is named first in the prompt: what the model keeps the same.
_KEEP = {
    "product": "the same shape, proportions, parts, labels, markings, material and colours",
    "character": "the same face, age, build, hair, eyes, skin, marks and wardrobe",
}


def folder_of(shape: str) -> str:
    """``9:16`` -> ``9x16``: a placement's folder (and the middle of its outputs' names)."""
    return shape.replace(":", "x")


def shape_of(folder: str) -> str:
    """``9x16`` -> ``9:16``."""
    return folder.replace("x", ":")


def placement_output(shape: str, inner: str) -> str:
    """``("9:16", "start/scene_2")`` -> ``placements/9x16/start/scene_2``."""
    return f"{PLACEMENTS}/{folder_of(shape)}/{inner}"


def is_placement(output: str) -> bool:
    return output.startswith(f"{PLACEMENTS}/")


def split_placement(output: str) -> tuple[str, str]:
    """``placements/9x16/clip/scene_2`` -> ``("9:16", "clip/scene_2")``."""
    _, folder, inner = output.split("/", 2)
    return shape_of(folder), inner


def ratio(shape: str) -> float:
    width, height = (float(part) for part in shape.split(":"))
    return width / height


def scene_outputs(shape: str, scene: int) -> list[str]:
    """The frames of ``scene`` in placement ``shape``: start, then end."""
    return [placement_output(shape, f"{chain}/scene_{scene}") for chain in PLACEMENT_CHAINS]


def catalogued_video_shapes() -> tuple[str, ...]:
    """Every shape some video model of the catalogue makes (and an unknown model's): the shapes a crop may start
    from."""
    shapes = list(UNKNOWN_VIDEO_MODEL_SHAPES)
    for entry in catalogue().values():
        if entry.get("makes") == "video":
            shapes += [s for s in entry.get("aspect_ratios") or [] if s not in shapes]
    return tuple(shapes)


def placement_outputs(brief: Brief) -> list[str]:
    """Every placement output of ``brief``, parents before children: all frames, then the clips (those of shapes a
    video model may make first, so a crop's source comes before it), then each placement's ad and storyboard."""
    count = len(brief.scenes)
    frames = [name for shape in brief.placements for k in range(1, count + 1) for name in scene_outputs(shape, k)]
    makeable = catalogued_video_shapes()
    ordered = sorted(brief.placements, key=lambda shape: shape not in makeable)
    clips = [placement_output(shape, f"clip/scene_{k}") for shape in ordered for k in range(1, count + 1)]
    finals = [placement_output(shape, name) for shape in brief.placements for name in ("ad", "storyboard")]
    return frames + clips + finals


def video_shapes(backend: Optional[str], model: Optional[str]) -> Optional[frozenset[str]]:
    """The shapes the video model makes clips of; None: any (the offline preview, or no model known)."""
    if backend in (None, "preview"):
        return None
    entry = model_entry(model or "") or {}
    return frozenset(entry.get("aspect_ratios") or UNKNOWN_VIDEO_MODEL_SHAPES)


def clip_source(brief: Brief, shape: str, makes: Optional[frozenset[str]]) -> Optional[str]:
    """The shape whose clip placement ``shape``'s clip is cropped from, or None when the model makes it."""
    if makes is None or shape in makes:
        return None
    candidates = [s for s in [brief.aspect_ratio, *brief.placements] if s in makes]
    if not candidates:
        return None  # no shape to crop from: the brief check (problems_for) refuses such a master first
    return min(candidates, key=lambda s: (round(abs(math.log(ratio(s) / ratio(shape))), 9), ratio(s)))


def source_outputs(brief: Brief, source: str, scene: int) -> tuple[str, str, str]:
    """The clip of ``source`` (the master's or a placement's) for ``scene``, and its start and end frames."""
    inner = (f"clip/scene_{scene}", f"start/scene_{scene}", f"end/scene_{scene}")
    if source == brief.aspect_ratio:
        return inner
    return tuple(placement_output(source, name) for name in inner)  # type: ignore[return-value]


def shown_sheets(brief: Brief, scene: int, limits: Optional[ReferenceLimits]) -> tuple[str, ...]:
    """The subjects whose sheets a placement frame of ``scene`` is shown after its master frame (``sheets`` mode):
    characters first, then products, each within the model's limit, the master frame counting towards the total;
    without ``limits`` (no model known), every sheet of the scene."""
    if brief.reference_mode != "sheets":
        return ()
    kinds = [(s, brief.subject(s).kind) for s in brief.scene(scene).subjects]
    characters = [s for s, kind in kinds if kind == "character"]
    products = [s for s, kind in kinds if kind != "character"]
    if limits is None:
        return tuple(characters + products)
    chosen = characters[: limits.characters] + products[: limits.objects]
    return tuple(chosen[: max(0, limits.total - 1)])


def frame_parents(brief: Brief, output: str, limits: Optional[ReferenceLimits]) -> list[str]:
    """What a placement frame is shown, in order: its master frame, then the sheets :func:`shown_sheets` picks."""
    _, inner = split_placement(output)
    slot = Slot.parse(inner)
    return [slot.key] + [sheet_output(s) for s in shown_sheets(brief, slot.scene, limits)]


def placement_parents(output: str, brief: Brief, limits: Optional[ReferenceLimits],
                      makes: Optional[frozenset[str]]) -> list[str]:
    """The stored outputs whose bytes ``output``'s request uses."""
    shape, inner = split_placement(output)
    count = len(brief.scenes)
    if inner == "ad":
        return [placement_output(shape, f"clip/scene_{k}") for k in range(1, count + 1)]
    if inner == "storyboard":
        return [name for k in range(1, count + 1) for name in scene_outputs(shape, k)]
    if inner.startswith("clip/"):
        k = int(inner.rsplit("_", 1)[1])
        source = clip_source(brief, shape, makes)
        if source is None:
            return scene_outputs(shape, k)
        return list(source_outputs(brief, source, k))
    return frame_parents(brief, output, limits)


def placement_call(output: str, brief: Brief, video_maker: Any) -> Optional[str]:
    """The model call that makes a placement output (what an estimate prices): ``"image"`` for a frame, ``"clip"``
    for a clip ``video_maker`` (a :class:`~adchain_assets.plan.requests.Maker`) makes itself, None for no call (a
    cropped clip, an ad, a storyboard)."""
    shape, inner = split_placement(output)
    if inner.startswith("clip/"):
        makes = video_shapes(video_maker.backend, video_maker.model)
        return "clip" if clip_source(brief, shape, makes) is None else None
    return None if inner in ("ad", "storyboard") else "image"


def placement_frame_prompt(brief: Brief, output: str, limits: Optional[ReferenceLimits]) -> tuple[PlacementPrompt, int]:
    """A placement frame's prompt and the number of images it is shown (the master frame and the sheets)."""
    shape, inner = split_placement(output)
    slot = Slot.parse(inner)
    sheets = shown_sheets(brief, slot.scene, limits)
    return compose_placement_prompt(brief, shape, slot, sheets), 1 + len(sheets)


def tolerates_held(output: str) -> bool:
    """A storyboard is drawn from whatever frames exist (a held one is an empty cell), so it never waits."""
    return is_placement(output) and split_placement(output)[1] == "storyboard"


def product_boxes(provenance: Mapping[str, Any]) -> list[list[float]]:
    """The boxes (left, top, right, bottom, in the image's pixels) where its product checks found each product."""
    return [list(score["box"]) for score in (provenance.get("consistency") or {}).values()
            if isinstance(score, Mapping) and score.get("kind") == "product" and score.get("box")]


@dataclass(frozen=True)
class PlacementPrompt(ComposedPrompt):
    """The prompt of a placement frame: what to recompose, in which shape, and what to keep."""

    placement: str = ""
    master: str = ""

    @property
    def title(self) -> str:
        assert self.slot is not None
        return placement_output(self.placement, self.slot.key)

    @property
    def purpose(self) -> str:
        assert self.slot is not None
        return f"The {self.placement} version of {describe_reference(self.slot)} of an advertising campaign"


def _orientation(shape: str) -> str:
    value = ratio(shape)
    return "square" if value == 1 else "portrait" if value < 1 else "landscape"


def recompose_note(brief: Brief, slot: Slot, placement: str, sheets: Sequence[str]) -> str:
    """What to do with image 1 (the master frame), which image shows which subject, and what to keep."""
    master = brief.aspect_ratio
    listing = [f"Image 1: {describe_reference(slot)} in {master}, the frame to recompose."]
    sheet_image = {}
    for i, subject_id in enumerate(sheets, start=2):
        subject = brief.subject(subject_id)
        sheet_image[subject_id] = i
        what = "photo" if subject.photo else ("character reference sheet" if subject.kind == "character"
                                              else "product packshot")
        listing.append(f"Image {i}: the {subject_id} ({what}).")
    sentences = [
        f"Reference images, in the order attached. {' '.join(listing)}",
        f"Recompose image 1 as a {placement} ({_orientation(placement)}) frame: the same moment, the same subjects"
        " in the same poses, wardrobe and expressions, the same light, colour palette and style. Keep everything"
        " else the same; change only the frame's shape.",
        f"Where the {placement} frame needs more picture than image 1 has, extend the scene beyond its edges in the"
        " same style rather than cropping: keep every face, every head and the whole product inside the frame.",
    ]
    for subject_id in brief.scene(slot.scene).subjects:
        subject = brief.subject(subject_id)
        images = f"image 1 and image {sheet_image[subject_id]}" if subject_id in sheet_image else "image 1"
        sentences.append(f"The {subject_id} is the exact same {subject.kind} shown in {images}: keep"
                         f" {_KEEP[subject.kind]} identical.")
    return " ".join(sentences)


def compose_placement_prompt(brief: Brief, placement: str, slot: Slot, sheets: Sequence[str] = ()) -> PlacementPrompt:
    """The full prompt of ``slot``'s frame in ``placement``: its scene text (the moment), its subjects' full
    descriptions, the look, and the recomposition note. It never uses another scene's text."""
    scene = brief.scene(slot.scene)
    return PlacementPrompt(
        slot=slot,
        scene_text=scene.text_for(slot.chain),
        subjects=tuple(SubjectLine(s.id, s.kind, s.description) for s in map(brief.subject, scene.subjects)),
        look=tuple(brief.look.markers()),
        continuity="",
        reference_note=recompose_note(brief, slot, placement, sheets),
        placement=placement,
        master=brief.aspect_ratio,
    )


def placements_named(brief: Brief, chosen: Iterable[str]) -> tuple[list[str], list[str]]:
    """The brief's placements among ``chosen`` (every one when ``chosen`` is empty), and the chosen shapes the
    brief does not have."""
    chosen = list(chosen)
    if not chosen:
        return list(brief.placements), []
    return [s for s in brief.placements if s in chosen], [s for s in chosen if s not in brief.placements]
