"""What a brief edit changes: a fingerprint of every image's request, and the images an edit touches.

An image must be remade when its own request changed (its prompt, aspect ratio, which references it is
shown, or the user's photo) or when anything upstream of it in the lineage graph was remade. Fingerprints
leave out the reference pixels on purpose: those change only through an upstream image, which the lineage
graph already covers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

from adchain_assets.brief import LoadedBrief
from adchain_assets.prompts import compose_prompt
from adchain_assets.references import CHAINS, Slot, downstream_closure, shown_references


def image_fingerprints(loaded: LoadedBrief) -> dict[str, str]:
    """``{"reference/scene_1": "<hash>", ...}`` for every image of the brief."""
    brief = loaded.brief
    fingerprints = {}
    for k in range(1, len(brief.scenes) + 1):
        for chain in CHAINS:
            slot = Slot(chain, k)
            if slot == Slot("reference", 1) and brief.reference_image:
                material: dict = {"user_image": hashlib.sha256(loaded.resolve(brief.reference_image).read_bytes()).hexdigest()}
            else:
                shown = shown_references(slot, brief.reference_mode)
                material = {
                    "prompt": compose_prompt(brief, slot, shown).text,
                    "aspect_ratio": brief.aspect_ratio,
                    "references": [ref.key for ref in shown],
                }
            fingerprints[slot.key] = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]
    return fingerprints


def affected_images(before: Mapping[str, str], after: Mapping[str, str], max_scenes: int) -> list[Slot]:
    """The images of ``after`` whose request changed, plus everything downstream of them, in graph order."""
    changed = [Slot.parse(key) for key, value in after.items() if before.get(key) != value]
    existing = {Slot.parse(key) for key in after}
    touched = downstream_closure(changed, max_scenes) & existing
    return sorted(touched, key=lambda s: (s.scene, CHAINS.index(s.chain)))
