"""Every output of a campaign, and the one function that builds the request that makes it.

An output is a subject's sheet (``subjects/<id>``, in ``sheets`` mode), an image (``reference/scene_k``,
``start/scene_k``, ``end/scene_k``), a clip (``clip/scene_k``), the ``storyboard``, the ``ad``, the ``report``, the
``storyboard_pdf``, the ``deliverables``, or an output of a placement (``placements/9x16/start/scene_k``, ...:
:mod:`adchain_assets.plan.placements`). :func:`build_request` turns the pinned brief and the stored parents into
the output's full :class:`Request`: everything that decides its bytes (backend, model, prompt, settings, the parents'
pixels). Its :attr:`Request.fingerprint` is the generation cache's key, is written into the output's provenance as
``request_sha256``, and is what the plan compares to tell whether an output is up to date. Nothing else builds
requests: the asset steps, the plan, the sensor and the CLI all call this.

An image with ``takes_per_image`` N > 1 is N candidate requests (``Request.candidates``), each its own cache key,
plus the ranking settings; with N = 1 the output's fingerprint is its one candidate's.

Parents are given as :class:`Parent` records (their stored provenance), so the plan never decodes an image: an
image's provenance carries ``pixels_sha256``, the digest of its decoded pixels (a re-encoded PNG of the same
picture is the same reference).

An image or a sheet may carry a :class:`Direction`: the director's notes in force on it (part of its prompt) and,
for an edit, the take it edits (its pixels are shown first). Without notes a request is exactly what it was
before notes existed.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Optional, Sequence

from PIL import Image

from adchain_assets.brief.model import Brief, LoadedBrief
from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL, reference_limits
from adchain_assets.plan.finish import finish_material, image_cell, storyboard_pdf_material
from adchain_assets.plan.placements import (
    CROP_CODE_VERSION,
    clip_source,
    compose_placement_prompt,
    frame_parents,
    is_placement,
    placement_output,
    placement_outputs,
    placement_parents,
    product_boxes,
    scene_outputs,
    shown_sheets,
    split_placement,
    video_shapes,
)
from adchain_assets.plan.prompts import (
    SHEET_ASPECT_RATIOS,
    ComposedPrompt,
    compose_clip_prompt,
    compose_prompt,
    compose_sheet_prompt,
)
from adchain_assets.plan.references import (
    CHAINS,
    SHEETS,
    ReferenceLimits,
    Slot,
    select_sheets,
    sheet_output,
    shown_references,
)

# Bump when a code change changes what an unchanged request produces.
CODE_VERSIONS = {"image": "2", "user_image": "1", "sheet": "1", "clip": "2", "storyboard": "4", "ad": "2", "report": "3",
                 "storyboard_pdf": "1", "deliverables": "1"}
STORYBOARD, AD, REPORT = "storyboard", "ad", "report"
STORYBOARD_PDF, DELIVERABLES = "storyboard_pdf", "deliverables"
FINISHING = (STORYBOARD, AD, REPORT, STORYBOARD_PDF, DELIVERABLES)  # outputs made from other outputs, with no model
PLACEMENT = "placement"  # the kind of every output of a placement (its frames, clips, ad and storyboard)
AD_CROSSFADE_S = 0.5


def fingerprint(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def pixel_digest(png: bytes) -> str:
    """sha256 of the decoded pixels (mode, size, raw bytes): the same picture gives the same digest."""
    with Image.open(io.BytesIO(png)) as image:
        digest = hashlib.sha256(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


def clip_output(scene: int) -> str:
    return f"clip/scene_{scene}"


def output_names(scene_count: int) -> list[str]:
    """Every output of a brief with ``scene_count`` scenes, parents before children."""
    images = [Slot(chain, k).key for k in range(1, scene_count + 1) for chain in CHAINS]
    clips = [clip_output(k) for k in range(1, scene_count + 1)]
    return images + clips + [STORYBOARD, AD, REPORT, STORYBOARD_PDF, DELIVERABLES]


def outputs_of(brief: Brief) -> list[str]:
    """Every output of ``brief``, parents before children: in ``sheets`` mode its subjects' sheets first, its
    placements' outputs before the report (which counts them) and the deliverables (which hold the report)."""
    sheets = [sheet_output(s.id) for s in brief.subjects] if brief.reference_mode == "sheets" else []
    made = output_names(len(brief.scenes))
    last = [STORYBOARD_PDF, REPORT, DELIVERABLES]
    return sheets + [name for name in made if name not in last] + placement_outputs(brief) + last


def kind_of(output: str) -> str:
    if is_placement(output):
        return PLACEMENT
    if output in FINISHING:
        return output
    if output.startswith(f"{SHEETS}/"):
        return "sheet"
    return "clip" if output.startswith("clip/") else "image"


def subject_of(output: str) -> str:
    """``subjects/woman`` -> ``woman``."""
    return output.split("/", 1)[1]


def scene_of(output: str) -> int:
    return int(output.rsplit("_", 1)[1])


@dataclass(frozen=True)
class Parent:
    """What a request needs of a stored parent: its provenance (sha256, pixels_sha256, take, ...)."""

    output: str
    provenance: Mapping[str, Any]

    @property
    def sha256(self) -> str:
        return str(self.provenance["sha256"])

    @property
    def pixels(self) -> str:
        return str(self.provenance.get("pixels_sha256") or self.provenance["sha256"])


@dataclass(frozen=True)
class Maker:
    """Who answers a kind of request: the backend and model ids as the generator reports them."""

    backend: str
    model: str


@dataclass(frozen=True)
class Request:
    output: str
    material: Mapping[str, Any]
    candidates: Sequence[Mapping[str, Any]] = field(default_factory=tuple)  # images: one material per candidate

    @property
    def fingerprint(self) -> str:
        if len(self.candidates) == 1:
            return self.candidate_fingerprints[0]
        return fingerprint(self.material)

    @property
    def candidate_fingerprints(self) -> list[str]:
        return [fingerprint(c) for c in self.candidates]

    @property
    def call_keys(self) -> list[str]:
        """The fingerprints its model calls are cached and recorded under: each candidate's, else its own."""
        return self.candidate_fingerprints or [self.fingerprint]


@dataclass(frozen=True)
class Edit:
    """What an edit starts from: a take of the same image (shown to the model first) and the change asked."""

    note: str
    take: int
    sha256: str
    pixels: str  # pixel digest of that take (what the request keys on)

    def to_record(self) -> dict[str, Any]:
        return {"note": self.note, "take": self.take, "sha256": self.sha256, "pixels_sha256": self.pixels}

    @classmethod
    def from_record(cls, record: Optional[Mapping[str, Any]]) -> Optional["Edit"]:
        """The edit a provenance's ``edit`` field names (None when the image was not an edit)."""
        if not record:
            return None
        return cls(str(record["note"]), int(record["take"]), str(record["sha256"]),
                   str(record.get("pixels_sha256") or record["sha256"]))


@dataclass(frozen=True)
class Direction:
    """The director's notes in force on an image and, for an edit of its current take, that edit."""

    notes: tuple[str, ...] = ()
    edit: Optional[Edit] = None




def candidate_material(maker: Maker, prompt: str, aspect_ratio: str, reference_pixels: Sequence[str], take: int,
                       candidate: int) -> dict[str, Any]:
    """One image call's request: what the generation cache keys on."""
    return {
        "kind": "image", "v": CODE_VERSIONS["image"], "backend": maker.backend, "model": maker.model,
        "prompt": prompt, "aspect_ratio": aspect_ratio, "references": list(reference_pixels), "take": take,
        "candidate": candidate,
    }


def reference_limits_for(maker: Maker) -> tuple[str, ReferenceLimits]:
    """The model whose limits apply to ``maker``'s requests, and those limits: its own; the offline preview
    renderer is shown what the default image model would be shown (as is a model the catalogue has no limits
    for, which ``validate`` refuses in sheets mode)."""
    own = reference_limits(maker.model)
    if own is not None:
        return maker.model, own
    return DEFAULT_IMAGE_MODEL, reference_limits(DEFAULT_IMAGE_MODEL)  # type: ignore[return-value]


def shown_to(loaded: LoadedBrief, slot: Slot, image_maker: Optional[Maker]) -> tuple[list[Slot], tuple[str, ...]]:
    """What the model is shown for ``slot``, in order: earlier images of the campaign, then (``sheets`` mode) the
    subjects whose sheets follow, as far as the model's limits allow. Without ``image_maker`` (no model known),
    every sheet of the scene."""
    brief = loaded.brief
    previous = shown_references(slot, brief.reference_mode)
    if brief.reference_mode != "sheets":
        return previous, ()
    scene = [(s, brief.subject(s).kind) for s in brief.scene(slot.scene).subjects]
    if image_maker is None:
        return previous, tuple(s for s, kind in scene if kind == "character") + tuple(
            s for s, kind in scene if kind != "character")
    chosen = select_sheets(previous, scene, reference_limits_for(image_maker)[1])
    return (previous if chosen.previous_kept else []), chosen.sheets


def reference_warnings(loaded: LoadedBrief, image_maker: Maker) -> list[str]:
    """In ``sheets`` mode, each scene whose references exceed the model's limits, and what is left out."""
    brief = loaded.brief
    if brief.reference_mode != "sheets":
        return []
    model, limits = reference_limits_for(image_maker)
    warnings = []
    for k in range(1, len(brief.scenes) + 1):
        scene = [(s, brief.subject(s).kind) for s in brief.scene(k).subjects]
        left_out: dict[str, list[str]] = {}
        for chain in CHAINS:
            slot = Slot(chain, k)
            if slot == Slot("reference", 1) and brief.reference_image:
                continue
            for name in select_sheets(shown_references(slot, "sheets"), scene, limits).dropped:
                left_out.setdefault(name, []).append(chain)
        if left_out:
            what = "; ".join(f"{name} (for {', '.join(chains)})" for name, chains in left_out.items())
            warnings.append(
                f"{loaded.path}: scenes[{k - 1}]: {model} takes at most {limits.total} reference images"
                f" ({limits.characters} characters, {limits.objects} objects): left out: {what}")
    return warnings


def parents_of(output: str, loaded: LoadedBrief, image_maker: Optional[Maker] = None,
               video_maker: Optional[Maker] = None) -> list[str]:
    """The stored outputs whose bytes ``output``'s request uses (only what is shown, for images; a placement's
    clip depends on whether ``video_maker`` makes its shape)."""
    brief = loaded.brief
    kind = kind_of(output)
    if kind == PLACEMENT:
        return placement_parents(output, brief, _limits(image_maker), _makes(video_maker))
    count = len(brief.scenes)
    sheets = [name for name in outputs_of(brief) if kind_of(name) == "sheet"]
    if kind == "sheet":
        return []
    if kind == "image":
        slot = Slot.parse(output)
        if slot == Slot("reference", 1) and brief.reference_image:
            return []
        images, shown_sheets = shown_to(loaded, slot, image_maker)
        return [p.key for p in images] + [sheet_output(s) for s in shown_sheets]
    if kind == "clip":
        k = scene_of(output)
        return [f"start/scene_{k}", f"end/scene_{k}"]
    if kind == STORYBOARD:
        return sheets + [Slot(chain, k).key for k in range(1, count + 1) for chain in CHAINS]
    if kind == AD:
        return [clip_output(k) for k in range(1, count + 1)]
    if kind == DELIVERABLES:  # the master's ad, each placement's ad, the PDF and the report
        return [AD] + [placement_output(shape, AD) for shape in brief.placements] + [STORYBOARD_PDF, REPORT]
    masters = sheets + [Slot(chain, k).key for k in range(1, count + 1) for chain in CHAINS] + [
        clip_output(k) for k in range(1, count + 1)]
    if kind == STORYBOARD_PDF:  # the master's sheets, images and clips and the campaign's spend
        return masters
    # the report: every sheet, image and clip, the placements' too (their costs and scores), and the spend
    return masters + [
        name for name in placement_outputs(brief) if split_placement(name)[1].split("/")[0] in ("start", "end", "clip")]


def image_prompt(loaded: LoadedBrief, slot: Slot, image_maker: Optional[Maker],
                 direction: Optional[Direction] = None) -> ComposedPrompt:
    """The prompt of ``slot`` with what it is shown (:func:`shown_to`) and ``direction``."""
    direction = direction or Direction()
    shown, sheets = shown_to(loaded, slot, image_maker)
    return compose_prompt(loaded.brief, slot, shown, sheets, notes=direction.notes,
                          edit=direction.edit.note if direction.edit else "")


def sheet_prompt(brief: Brief, subject_id: str, direction: Optional[Direction] = None) -> ComposedPrompt:
    """The prompt of ``subject_id``'s sheet with ``direction``."""
    direction = direction or Direction()
    return compose_sheet_prompt(brief, brief.subject(subject_id), notes=direction.notes,
                                edit=direction.edit.note if direction.edit else "")


def user_image_request(output: str, loaded: LoadedBrief, relative: str) -> Request:
    """The request of an output that is a file the brief names (``reference_image``, a subject's ``photo``), used
    as is: the file's sha256 decides it."""
    source = hashlib.sha256(loaded.resolve(relative).read_bytes()).hexdigest()
    material = {"kind": "user_image", "v": CODE_VERSIONS["user_image"], "source_sha256": source}
    return Request(output, material, (material,))


def build_request(
    output: str,
    loaded: LoadedBrief,
    parents: Mapping[str, Parent],
    *,
    image_maker: Optional[Maker] = None,
    video_maker: Optional[Maker] = None,
    take: int = 0,
    spend_usd: float = 0.0,
    direction: Optional[Direction] = None,
    approved: Collection[str] = (),
) -> Request:
    """The full request of ``output`` from the pinned brief and its stored ``parents`` (see :func:`parents_of`);
    an image's ``direction`` (notes, an edit), and the ``approved`` outputs the review outputs mark."""
    brief = loaded.brief
    kind = kind_of(output)
    if kind == PLACEMENT:
        return placement_request(output, loaded, parents, image_maker=image_maker, video_maker=video_maker, take=take)
    version = CODE_VERSIONS[kind]
    if kind == "sheet":
        subject = brief.subject(subject_of(output))
        if subject.photo:
            return user_image_request(output, loaded, subject.photo)
        assert image_maker is not None, "a sheet request needs the image model"
        prompt = sheet_prompt(brief, subject.id, direction).text
        edited = [direction.edit.pixels] if direction is not None and direction.edit is not None else []
        candidate = candidate_material(image_maker, prompt, SHEET_ASPECT_RATIOS[subject.kind], edited, take, 0)
        material = {"candidates": [fingerprint(candidate)], "sheet": version, "checks": brief.checks.model_dump(),
                    "subject": subject.model_dump()}
        return Request(output, material, (candidate,))
    if kind == "image":
        slot = Slot.parse(output)
        if slot == Slot("reference", 1) and brief.reference_image:
            return user_image_request(output, loaded, brief.reference_image)
        assert image_maker is not None, "an image request needs the image model"
        shown, sheets = shown_to(loaded, slot, image_maker)
        prompt = image_prompt(loaded, slot, image_maker, direction).text
        pixels = [parents[ref.key].pixels for ref in shown] + [parents[sheet_output(s)].pixels for s in sheets]
        if direction is not None and direction.edit is not None:
            pixels.insert(0, direction.edit.pixels)  # the take being edited is shown first
        candidates = tuple(
            candidate_material(image_maker, prompt, brief.aspect_ratio, pixels, take, c)
            for c in range(brief.takes_per_image)
        )
        # What the checks score it against: the scene's subjects (a description or a photo changes the scores).
        subjects = [brief.subject(s).model_dump() for s in brief.scene(slot.scene).subjects]
        material = {"candidates": [fingerprint(c) for c in candidates], "checks": brief.checks.model_dump(),
                    "subjects": subjects}
        return Request(output, material, candidates)
    if kind == "clip":
        assert video_maker is not None, "a clip request needs the video model"
        k = scene_of(output)
        material = {
            "kind": "clip", "v": version, "backend": video_maker.backend, "model": video_maker.model,
            "prompt": compose_clip_prompt(brief, k), "start": parents[f"start/scene_{k}"].pixels,
            "end": parents[f"end/scene_{k}"].pixels, "aspect_ratio": brief.aspect_ratio,
            "duration_s": brief.scene(k).duration_s, "resolution": brief.video.resolution, "audio": brief.video.audio,
        }
        return Request(output, material)
    if kind == STORYBOARD:
        cells = []
        for name in parents_of(output, loaded):
            parent = parents.get(name)
            cells.append(None if parent is None else {
                "output": name, "sha256": parent.sha256, "take": parent.provenance.get("take", 0),
                "backend": parent.provenance.get("backend"), "consistency": parent.provenance.get("consistency"),
                **_review_marks(name, parent, approved),
            })
        material = {"kind": STORYBOARD, "v": version, "title": brief.title, "aspect_ratio": brief.aspect_ratio,
                    "cells": cells}
        return Request(output, material)
    if kind == AD:
        clips = [parents[name].sha256 for name in parents_of(output, loaded)]
        material = {"kind": AD, "v": version, "title": brief.title, "clips": clips, "crossfade_s": AD_CROSSFADE_S}
        finish = finish_material(loaded)
        if finish is not None:  # briefs without a finish keep the rough cut's request
            material["finish"] = finish
        return Request(output, material)
    if kind == STORYBOARD_PDF:
        cells = [image_cell(name, parents[name].provenance) if name in parents else None
                 for name in parents_of(output, loaded) if kind_of(name) in ("sheet", "image")]
        material = {"kind": STORYBOARD_PDF, "v": version, **storyboard_pdf_material(loaded, cells, spend_usd)}
        return Request(output, material)
    if kind == DELIVERABLES:
        files = {name: parents[name].sha256 for name in parents_of(output, loaded)}
        srt = parents[AD].provenance.get("srt") or {}
        material = {"kind": DELIVERABLES, "v": version, "files": files, "srt": srt.get("sha256"),
                    "spend_usd": round(spend_usd, 6)}
        return Request(output, material)
    rows = {name: parents[name].sha256 for name in parents_of(output, loaded) if name in parents}
    material = {"kind": REPORT, "v": version, "outputs": rows, "spend_usd": round(spend_usd, 6)}
    signed = sorted(name for name in rows if name in approved)
    if signed:  # only when there is any, so that the requests of reports made before sign-off existed hold
        material["approved"] = signed
    return Request(output, material)


def _review_marks(name: str, parent: Parent, approved: Collection[str]) -> dict[str, Any]:
    """What the storyboard shows of a cell beyond its image: its sign-off and notes (keys only when present, so
    that the requests of storyboards made before either existed hold)."""
    marks: dict[str, Any] = {}
    if name in approved:
        marks["approved"] = True
    if parent.provenance.get("note"):
        marks["note"] = parent.provenance["note"]
    return marks


def _limits(image_maker: Optional[Maker]) -> Optional[ReferenceLimits]:
    return reference_limits_for(image_maker)[1] if image_maker is not None else None


def _makes(video_maker: Optional[Maker]) -> Optional[frozenset[str]]:
    return video_shapes(video_maker.backend, video_maker.model) if video_maker is not None else None


def clip_material(loaded: LoadedBrief, scene: int, aspect_ratio: str, start: Parent, end: Parent,
                  video_maker: Maker) -> dict[str, Any]:
    """A video call's request: what the generation cache keys on (the master's clips and the placements')."""
    brief = loaded.brief
    return {
        "kind": "clip", "v": CODE_VERSIONS["clip"], "backend": video_maker.backend, "model": video_maker.model,
        "prompt": compose_clip_prompt(brief, scene), "start": start.pixels, "end": end.pixels,
        "aspect_ratio": aspect_ratio, "duration_s": brief.scene(scene).duration_s,
        "resolution": brief.video.resolution, "audio": brief.video.audio,
    }


def placement_request(output: str, loaded: LoadedBrief, parents: Mapping[str, Parent], *,
                      image_maker: Optional[Maker], video_maker: Optional[Maker], take: int = 0) -> Request:
    """The request of a placement's output (see :mod:`adchain_assets.plan.placements`): a frame recomposed from its
    master frame, a clip made from its frames or cropped from another shape's clip, its ad or its storyboard."""
    brief = loaded.brief
    shape, inner = split_placement(output)
    named = placement_parents(output, brief, _limits(image_maker), _makes(video_maker))
    if inner == AD:
        material = {"kind": AD, "v": CODE_VERSIONS[AD], "title": brief.title, "aspect_ratio": shape,
                    "clips": [parents[name].sha256 for name in named], "crossfade_s": AD_CROSSFADE_S}
        finish = finish_material(loaded, shape)
        if finish is not None:  # the master's finish in this shape's safe area
            material["finish"] = finish
        return Request(output, material)
    if inner == STORYBOARD:
        cells = [None if name not in parents else {
            "output": name, "sha256": parents[name].sha256, "backend": parents[name].provenance.get("backend"),
            "consistency": parents[name].provenance.get("consistency"),
        } for name in named]
        material = {"kind": STORYBOARD, "v": CODE_VERSIONS[STORYBOARD], "title": brief.title, "aspect_ratio": shape,
                    "cells": cells}
        return Request(output, material)
    if inner.startswith("clip/"):
        k = scene_of(inner)
        if clip_source(brief, shape, _makes(video_maker)) is None:
            assert video_maker is not None, "a clip request needs the video model"
            start, end = scene_outputs(shape, k)
            return Request(output, clip_material(loaded, k, shape, parents[start], parents[end], video_maker))
        clip, start, end = named
        material = {
            "kind": "crop", "v": CROP_CODE_VERSION, "aspect_ratio": shape, "source": parents[clip].sha256,
            "frames": [parents[start].pixels, parents[end].pixels],
            "keep": product_boxes(parents[start].provenance) + product_boxes(parents[end].provenance),
        }
        return Request(output, material)
    assert image_maker is not None, "a placement frame's request needs the image model"
    slot = Slot.parse(inner)
    sheets = shown_sheets(brief, slot.scene, _limits(image_maker))
    prompt = compose_placement_prompt(brief, shape, slot, sheets).text
    pixels = [parents[name].pixels for name in frame_parents(brief, output, _limits(image_maker))]
    candidate = candidate_material(image_maker, prompt, shape, pixels, take, 0)
    # What its checks score it against is its master frame (a parent); their thresholds change the verdicts.
    material = {"candidates": [fingerprint(candidate)], "checks": brief.checks.model_dump(), "placement": shape}
    return Request(output, material, (candidate,))
