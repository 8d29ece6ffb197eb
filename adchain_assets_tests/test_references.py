"""What each image is shown, and the lineage edges, exactly as the CONTRACT's table gives them."""

import pytest

from adchain_assets.plan.references import Slot, all_slots, shown_references, upstream


def keys(slots):
    return [slot.key for slot in slots]


CONTRACT_TABLE = {
    # slot: (chain mode, anchored mode)
    "reference/scene_1": ([], []),
    "reference/scene_2": (["reference/scene_1"], ["reference/scene_1"]),
    "reference/scene_5": (["reference/scene_4"], ["reference/scene_4", "reference/scene_1"]),
    "start/scene_1": (["reference/scene_1"], ["reference/scene_1"]),
    "start/scene_3": (["start/scene_2"], ["start/scene_2", "reference/scene_3", "reference/scene_1"]),
    "end/scene_1": (["reference/scene_1"], ["start/scene_1", "reference/scene_1"]),
    "end/scene_4": (["end/scene_3"], ["end/scene_3", "start/scene_4", "reference/scene_1"]),
}


@pytest.mark.parametrize("key", CONTRACT_TABLE)
def test_shown_references_follow_the_contract_table(key):
    chain_mode, anchored_mode = CONTRACT_TABLE[key]
    assert keys(shown_references(Slot.parse(key), "chain")) == chain_mode
    assert keys(shown_references(Slot.parse(key), "anchored")) == anchored_mode


CONTRACT_EDGES = {
    "reference/scene_1": set(),
    "reference/scene_2": {"reference/scene_1"},
    "reference/scene_3": {"reference/scene_2", "reference/scene_1"},
    "start/scene_1": {"reference/scene_1"},
    "start/scene_2": {"start/scene_1", "reference/scene_2", "reference/scene_1"},
    "end/scene_1": {"reference/scene_1", "start/scene_1"},
    "end/scene_2": {"end/scene_1", "start/scene_2", "reference/scene_1"},
    "end/scene_7": {"end/scene_6", "start/scene_7", "reference/scene_1"},
}


@pytest.mark.parametrize("key", CONTRACT_EDGES)
def test_upstream_is_the_contract_edges(key):
    assert set(keys(upstream(Slot.parse(key)))) == CONTRACT_EDGES[key]


def test_every_shown_reference_is_an_edge_and_every_edge_is_shown_by_some_mode():
    for slot in all_slots(8):
        shown = set(shown_references(slot, "chain")) | set(shown_references(slot, "anchored"))
        assert shown == set(upstream(slot))
        assert len(shown_references(slot, "anchored")) <= 3


def test_chain_mode_is_the_seed_previous_image_only():
    for slot in all_slots(8):
        shown = shown_references(slot, "chain")
        if slot == Slot("reference", 1):
            assert shown == []
        elif slot.scene == 1:
            assert shown == [Slot("reference", 1)]
        else:
            assert shown == [Slot(slot.chain, slot.scene - 1)]


@pytest.mark.parametrize("bad", ["reference/scene_0", "middle/scene_2", "reference/2", "start/scene_x"])
def test_slot_parse_rejects_keys_that_are_not_images(bad):
    with pytest.raises(ValueError, match="is not an image asset key"):
        Slot.parse(bad)
