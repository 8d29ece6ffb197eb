"""The asset graph is the reference chain: keys, edges and partitions as the CONTRACT fixes them."""

from dagster import AssetKey, DynamicPartitionsDefinition

from adchain_assets.plan.references import CHAINS, Slot, all_slots, upstream

from .helpers import definitions_for


def contract_parents(key: str) -> set[str]:
    chain, k = key.split("/scene_")
    k = int(k)
    if chain == "reference":
        return set() if k == 1 else {"reference/scene_1"} if k == 2 else {f"reference/scene_{k-1}", "reference/scene_1"}
    if chain == "start":
        return {"reference/scene_1"} if k == 1 else {f"start/scene_{k-1}", f"reference/scene_{k}", "reference/scene_1"}
    return {"reference/scene_1", "start/scene_1"} if k == 1 else {f"end/scene_{k-1}", f"start/scene_{k}", "reference/scene_1"}


def test_image_assets_and_edges_match_the_contract(tmp_path):
    graph = definitions_for(tmp_path, max_scenes=8).resolve_asset_graph()
    image_keys = {key.to_user_string() for key in graph.get_all_asset_keys() if key.path[0] in CHAINS}
    expected = {f"{chain}/scene_{k}" for chain in ("reference", "start", "end") for k in range(1, 9)}
    assert image_keys == expected
    for key in expected:
        parents = {parent.to_user_string() for parent in graph.get(AssetKey.from_user_string(key)).parent_keys}
        # the CONTRACT's edges between images, and the subject sheets (third round) that any image may be shown
        assert parents == contract_parents(key) | {"subjects"}, key


def test_max_scenes_sets_the_number_of_slots(tmp_path):
    graph = definitions_for(tmp_path, max_scenes=3).resolve_asset_graph()
    assert len([k for k in graph.get_all_asset_keys() if k.path[0] in CHAINS]) == 9
    assert len([k for k in graph.get_all_asset_keys() if k.path[0] == "clip"]) == 3


def test_every_image_is_partitioned_by_campaign(tmp_path):
    graph = definitions_for(tmp_path, max_scenes=4).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, DynamicPartitionsDefinition) and partitions.name == "campaigns"


def test_storyboard_is_downstream_of_every_image(tmp_path):
    graph = definitions_for(tmp_path, max_scenes=4).resolve_asset_graph()
    assert graph.get(AssetKey("storyboard")).parent_keys == {AssetKey(s.key_path) for s in all_slots(4)} | {
        AssetKey("subjects")}


def test_critical_path_of_n_scenes_is_n_plus_two_calls():
    for n in range(1, 9):
        depth: dict[Slot, int] = {}
        for slot in sorted(all_slots(n), key=lambda s: (s.scene, ("reference", "start", "end").index(s.chain))):
            depth[slot] = 1 + max((depth[p] for p in upstream(slot)), default=0)
        assert max(depth.values()) == n + 2


def test_image_assets_carry_a_code_version_for_staleness(tmp_path):
    from adchain_assets.defs.images import IMAGE_CODE_VERSION

    graph = definitions_for(tmp_path, max_scenes=2).resolve_asset_graph()
    for slot in all_slots(2):
        assert graph.get(AssetKey(slot.key_path)).code_version == IMAGE_CODE_VERSION
