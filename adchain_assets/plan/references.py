"""Which image depends on which, and which of those the model is shown: pure functions of the slot.

The lineage graph (``upstream``) is the union of what the ``chain`` and ``anchored`` modes show the model, so the
graph is fixed while the brief chooses the mode. In ``sheets`` mode an image is shown the seed's previous image of
its chain, then the sheet of every subject its scene names (:func:`select_sheets`), within the model's limits; the
sheets are one asset upstream of every image.

Which references a model's limits leave out, in priority order (highest first): the scene's character sheets (in
the scene's order, at most ``characters`` of them), then the previous image of the chain, then the scene's product
sheets (at most ``objects``); of those, the first ``total`` are kept. They are shown in a fixed order: the previous
image first, then the characters' sheets, then the products'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

Chain = Literal["reference", "start", "end"]
CHAINS: tuple[Chain, ...] = ("reference", "start", "end")
ReferenceMode = Literal["chain", "anchored", "sheets"]
SHEETS = "subjects"  # the sheets' asset, and the folder of their files: subjects/<subject id>


def sheet_output(subject_id: str) -> str:
    """``woman`` -> ``subjects/woman``: the output name of a subject's sheet."""
    return f"{SHEETS}/{subject_id}"


@dataclass(frozen=True)
class ReferenceLimits:
    """The most reference images a model takes in one request: in all, of characters, of objects."""

    total: int
    characters: int
    objects: int


@dataclass(frozen=True)
class SheetSelection:
    """The sheets an image is shown (subject ids, characters first), whether the previous image fits, and
    what the limits left out (output names)."""

    sheets: tuple[str, ...]
    previous_kept: bool
    dropped: tuple[str, ...]


def select_sheets(previous: Sequence["Slot"], subjects: Sequence[tuple[str, str]],
                  limits: ReferenceLimits) -> SheetSelection:
    """Which of a scene's ``subjects`` ((id, kind), in the scene's order) are shown by their sheets beside the
    ``previous`` image(s), under ``limits`` (see the module docstring for the priority)."""
    characters = [s for s, kind in subjects if kind == "character"]
    products = [s for s, kind in subjects if kind != "character"]
    ranked: list[tuple[str, str]] = [("character", s) for s in characters[: limits.characters]]
    ranked += [("previous", slot.key) for slot in previous]
    ranked += [("product", s) for s in products[: limits.objects]]
    kept = ranked[: limits.total]
    over = ranked[limits.total:]
    dropped = [sheet_output(s) for s in characters[limits.characters:]] + [
        name if kind == "previous" else sheet_output(name) for kind, name in over
    ] + [sheet_output(s) for s in products[limits.objects:]]
    kept_sheets = {name for kind, name in kept if kind != "previous"}
    return SheetSelection(
        sheets=tuple(s for s in characters + products if s in kept_sheets),
        previous_kept=all(("previous", slot.key) in kept for slot in previous),
        dropped=tuple(dropped),
    )


@dataclass(frozen=True, order=True)
class Slot:
    """One image of a campaign: a chain and a 1-based scene number."""

    chain: Chain
    scene: int

    @property
    def key(self) -> str:
        return f"{self.chain}/scene_{self.scene}"

    @property
    def key_path(self) -> list[str]:
        return [self.chain, f"scene_{self.scene}"]

    @classmethod
    def parse(cls, key: str) -> "Slot":
        chain, _, scene = key.partition("/scene_")
        if chain not in CHAINS or not scene.isdigit() or int(scene) < 1:
            raise ValueError(f"{key!r} is not an image asset key like 'reference/scene_3'")
        return cls(chain, int(scene))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.key


def _ref(k: int) -> Slot:
    return Slot("reference", k)


def shown_references(slot: Slot, mode: ReferenceMode) -> list[Slot]:
    """The images of the campaign's chains the model is shown for ``slot``, in the order it is shown them (the
    CONTRACT's table); ``sheets`` mode shows the seed's (``chain``) images, then subject sheets."""
    chain, k = slot.chain, slot.scene
    if mode == "sheets":
        mode = "chain"
    if chain == "reference":
        if k == 1:
            return []
        if mode == "chain" or k == 2:
            return [_ref(k - 1)]
        return [_ref(k - 1), _ref(1)]
    if k == 1:
        if chain == "start" or mode == "chain":
            return [_ref(1)]
        return [Slot("start", 1), _ref(1)]
    previous = Slot(chain, k - 1)
    if mode == "chain":
        return [previous]
    companion = _ref(k) if chain == "start" else Slot("start", k)
    return [previous, companion, _ref(1)]


def upstream(slot: Slot) -> list[Slot]:
    """The slot's parents in the lineage graph: everything either mode may show, in a stable order."""
    ordered: list[Slot] = []
    for mode in ("chain", "anchored"):
        for parent in shown_references(slot, mode):
            if parent not in ordered:
                ordered.append(parent)
    return ordered


def all_slots(max_scenes: int) -> list[Slot]:
    return [Slot(chain, k) for chain in CHAINS for k in range(1, max_scenes + 1)]
