"""Every output of a campaign, and the one function that builds the request that makes it.

An output is an image (``reference/scene_k``, ``start/scene_k``, ``end/scene_k``), a clip (``clip/scene_k``), the
``storyboard``, the ``ad``, the ``report``, the ``storyboard_pdf`` or the ``deliverables``. :func:`build_request`
turns the pinned brief and the stored parents into the output's full :class:`Request`: everything that decides its
bytes (backend, model, prompt, settings, the parents' pixels). Its :attr:`Request.fingerprint` is the generation
cache's key, is written into the output's provenance as ``request_sha256``, and is what the plan compares to tell
whether an output is up to date. Nothing else builds requests: the asset steps, the plan, the sensor and the CLI
all call this.

An image with ``takes_per_image`` N > 1 is N candidate requests (``Request.candidates``), each its own cache key,
plus the ranking settings; with N = 1 the output's fingerprint is its one candidate's.

Parents are given as :class:`Parent` records (their stored provenance), so the plan never decodes an image: an
image's provenance carries ``pixels_sha256``, the digest of its decoded pixels (a re-encoded PNG of the same
picture is the same reference).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from PIL import Image

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.plan.finish import finish_material, image_cell, storyboard_pdf_material
from adchain_assets.plan.prompts import compose_clip_prompt, compose_prompt
from adchain_assets.plan.references import CHAINS, Slot, shown_references

# Bump when a code change changes what an unchanged request produces.
CODE_VERSIONS = {"image": "2", "user_image": "1", "clip": "2", "storyboard": "3", "ad": "2", "report": "2",
                 "storyboard_pdf": "1", "deliverables": "1"}
STORYBOARD, AD, REPORT = "storyboard", "ad", "report"
STORYBOARD_PDF, DELIVERABLES = "storyboard_pdf", "deliverables"
FINISHING = (STORYBOARD, AD, REPORT, STORYBOARD_PDF, DELIVERABLES)  # outputs made from other outputs, with no model
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


def kind_of(output: str) -> str:
    if output in FINISHING:
        return output
    return "clip" if output.startswith("clip/") else "image"


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


def candidate_material(maker: Maker, prompt: str, aspect_ratio: str, reference_pixels: Sequence[str], take: int,
                       candidate: int) -> dict[str, Any]:
    """One image call's request: what the generation cache keys on."""
    return {
        "kind": "image", "v": CODE_VERSIONS["image"], "backend": maker.backend, "model": maker.model,
        "prompt": prompt, "aspect_ratio": aspect_ratio, "references": list(reference_pixels), "take": take,
        "candidate": candidate,
    }


def parents_of(output: str, loaded: LoadedBrief) -> list[str]:
    """The stored outputs whose bytes ``output``'s request uses (only what is shown, for images)."""
    brief = loaded.brief
    kind = kind_of(output)
    count = len(brief.scenes)
    if kind == "image":
        slot = Slot.parse(output)
        if slot == Slot("reference", 1) and brief.reference_image:
            return []
        return [p.key for p in shown_references(slot, brief.reference_mode)]
    if kind == "clip":
        k = scene_of(output)
        return [f"start/scene_{k}", f"end/scene_{k}"]
    if kind == STORYBOARD:
        return [Slot(chain, k).key for k in range(1, count + 1) for chain in CHAINS]
    if kind == AD:
        return [clip_output(k) for k in range(1, count + 1)]
    if kind == DELIVERABLES:
        return [AD, STORYBOARD_PDF, REPORT]
    # the report and the PDF: every image and clip (their costs and scores) and the campaign's spend
    return [Slot(chain, k).key for k in range(1, count + 1) for chain in CHAINS] + [clip_output(k) for k in range(1, count + 1)]


def build_request(
    output: str,
    loaded: LoadedBrief,
    parents: Mapping[str, Parent],
    *,
    image_maker: Optional[Maker] = None,
    video_maker: Optional[Maker] = None,
    take: int = 0,
    spend_usd: float = 0.0,
) -> Request:
    """The full request of ``output`` from the pinned brief and its stored ``parents`` (see :func:`parents_of`)."""
    brief = loaded.brief
    kind = kind_of(output)
    version = CODE_VERSIONS[kind]
    if kind == "image":
        slot = Slot.parse(output)
        if slot == Slot("reference", 1) and brief.reference_image:
            source = hashlib.sha256(loaded.resolve(brief.reference_image).read_bytes()).hexdigest()
            material = {"kind": "user_image", "v": CODE_VERSIONS["user_image"], "source_sha256": source}
            return Request(output, material, (material,))
        assert image_maker is not None, "an image request needs the image model"
        shown = shown_references(slot, brief.reference_mode)
        prompt = compose_prompt(brief, slot, shown).text
        pixels = [parents[ref.key].pixels for ref in shown]
        candidates = tuple(
            candidate_material(image_maker, prompt, brief.aspect_ratio, pixels, take, c)
            for c in range(brief.takes_per_image)
        )
        material = {"candidates": [fingerprint(c) for c in candidates], "checks": brief.checks.model_dump(),
                    "subjects": [s.model_dump() for s in brief.subjects]}
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
                 for name in parents_of(output, loaded) if kind_of(name) == "image"]
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
    return Request(output, material)
