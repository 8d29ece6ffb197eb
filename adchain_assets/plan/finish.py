"""What decides the bytes of the finishing outputs, beyond the rough cut: the ad's finish, the storyboard PDF and
the deliverables. :func:`adchain_assets.plan.requests.build_request` puts these into their requests.

The brand, the captions and the music are in the ads' requests only (the master's and each placement's, never in
an image's or a clip's), so editing them re-makes the cut, each placement's ad, the PDF and the deliverables and
nothing the models make. A file the brief names (logo, font, music, a subject's photo) counts by its content's
sha256: a pinned snapshot's copy is named by it; a file in the brief's folder is hashed once per version (path,
modification time, size).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional

from adchain_assets.brief.model import LoadedBrief

FINISH_VERSION = "1"  # bump when a change of the finishing code changes what an unchanged finish makes
LOUDNESS_TARGET = {"integrated_lufs": -14.0, "true_peak_dbtp": -1.0}


@lru_cache(maxsize=256)
def _hash_file(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def named_file_sha256(loaded: LoadedBrief, relative: Optional[str]) -> Optional[str]:
    """sha256 of the content of a file the brief names (None for no file)."""
    if not relative:
        return None
    if loaded.files is not None and relative in loaded.files:
        stem = Path(str(loaded.files[relative])).name.split(".")[0]
        if len(stem) == 64:  # briefs/files/<sha256><suffix>: the copy is named by its content
            return stem
    path = Path(str(loaded.resolve(relative)))
    if not path.exists():  # a remote snapshot copy without a content name: read it
        return hashlib.sha256(loaded.resolve(relative).read_bytes()).hexdigest()
    stat = path.stat()
    return _hash_file(str(path), stat.st_mtime_ns, stat.st_size)


def finish_material(loaded: LoadedBrief, aspect_ratio: Optional[str] = None) -> Optional[dict[str, Any]]:
    """The ad's finish as its request states it, in the safe area of ``aspect_ratio`` (the brief's by default; a
    placement's ad gives its own); None when the brief asks for none (the rough cut as it was)."""
    brief = loaded.brief
    brand = brief.brand
    captions = [scene.caption.strip() for scene in brief.scenes]
    card = brand is not None and brand.has_end_card()
    bug = brand is not None and brand.logo_bug
    if not (card or bug or any(captions) or brief.music or brief.video.audio):
        return None
    return {
        "v": FINISH_VERSION,
        "aspect_ratio": aspect_ratio or brief.aspect_ratio,  # the safe area's shape
        "captions": captions,
        "font": named_file_sha256(loaded, brand.font) if brand is not None else None,
        "end_card": None if not card else {
            "cta": brand.cta, "url": brand.url, "legal": brand.legal, "colors": list(brand.colors),
            "logo": named_file_sha256(loaded, brand.logo), "end_card_s": brand.end_card_s,
        },
        "logo_bug": named_file_sha256(loaded, brand.logo) if bug else None,
        "music": named_file_sha256(loaded, brief.music),
        "clip_audio": brief.video.audio,
        "loudness": LOUDNESS_TARGET if (brief.music or brief.video.audio) else None,
    }


def storyboard_pdf_material(loaded: LoadedBrief, cells: list[Optional[Mapping[str, Any]]],
                            spend_usd: float) -> dict[str, Any]:
    """What the PDF shows: the whole brief (its texts, subjects, brand), the content of the files it names, each
    image's identity, scores, notes and approval, and the campaign's spend."""
    brief = loaded.brief
    named = [s.photo for s in brief.subjects]
    if brief.brand is not None:
        named += [brief.brand.logo, brief.brand.font]
    return {
        "brief": brief.model_dump(mode="json"),
        "files": {relative: named_file_sha256(loaded, relative) for relative in sorted({n for n in named if n})},
        "cells": cells,
        "spend_usd": round(spend_usd, 6),
    }


def image_cell(name: str, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """What the PDF shows of one stored image."""
    return {
        "output": name, "sha256": provenance.get("sha256"), "take": provenance.get("take", 0),
        "backend": provenance.get("backend"), "model": provenance.get("model"),
        "consistency": provenance.get("consistency"), "note": provenance.get("note"),
        "approved": provenance.get("approved"), "approved_by": provenance.get("approved_by"),
    }
