"""Which image depends on which, and which of those the model is shown: pure functions of the slot.

The lineage graph (``upstream``) is the union of what either reference mode shows the model, so the graph
is fixed while the brief chooses the mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Chain = Literal["reference", "start", "end"]
CHAINS: tuple[Chain, ...] = ("reference", "start", "end")
ReferenceMode = Literal["chain", "anchored"]


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
    """The images the model is shown for ``slot``, in the order it is shown them (the CONTRACT's table)."""
    chain, k = slot.chain, slot.scene
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
