"""Whole campaigns materialized in memory (ephemeral instance, dynamic partitions), offline."""

import json
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType
from PIL import Image, ImageOps

from adchain_assets.plan.references import CHAINS, Slot, shown_references
from adchain_assets.store.files import sha256

from .helpers import run_campaign, run_selection

PROVENANCE_FIELDS = {
    "campaign", "chain", "scene", "take", "backend", "model", "prompt", "references",
    "sha256", "width", "height", "cache_hit", "latency_s", "cost_usd", "created_at",
}


def files_of(data_dir: Path, campaign: str, suffix: str) -> list[str]:
    root = data_dir / "campaigns" / campaign
    return sorted(str(p.relative_to(root)) for p in root.rglob(f"*{suffix}")
                  if p.relative_to(root).parts[0] not in ("briefs", "runs"))  # pinned briefs and run records


def test_four_scene_campaign_writes_twelve_images_with_provenance(data_dir, instance):
    result = run_campaign(data_dir, instance, "aurora-perfume", max_scenes=8)
    assert result.success
    expected = sorted(f"{c}/scene_{k}" for c in CHAINS for k in range(1, 5))
    assert files_of(data_dir, "aurora-perfume", ".png") == [f"{e}.png" for e in expected]
    assert files_of(data_dir, "aurora-perfume", ".json") == [f"{e}.json" for e in expected]
    materialized = {
        e.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
        for e in [e.event_specific_data.materialization]
    }
    assert materialized == set(expected)


def test_slots_beyond_the_brief_yield_nothing_and_nothing_downstream_runs(data_dir, instance):
    result = run_campaign(data_dir, instance, "aurora-perfume", max_scenes=6)
    assert result.success
    skipped = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_SKIPPED}
    # scene 5's steps run and yield nothing; scene 6 is skipped because its parents yielded nothing
    assert {"reference__scene_6", "start__scene_6", "end__scene_6"} <= skipped
    assert not (data_dir / "campaigns" / "aurora-perfume" / "reference" / "scene_5.png").exists()
    assert instance.get_latest_materialization_event(AssetKey(["reference", "scene_5"])) is None


@pytest.mark.parametrize("mode", ["chain", "anchored"])
def test_every_provenance_field_is_present_and_true(data_dir, instance, mode):
    brief_path = data_dir / "briefs" / "aurora-perfume.yaml"
    brief_path.write_text(brief_path.read_text().replace("reference_mode: chain", f"reference_mode: {mode}"))
    assert run_campaign(data_dir, instance, "aurora-perfume").success
    root = data_dir / "campaigns" / "aurora-perfume"
    for png_path in root.rglob("*.png"):
        if "briefs" in png_path.relative_to(root).parts:
            continue  # the brand's logo, pinned with the brief: a file the brief names, not an output
        record = json.loads(png_path.with_suffix(".json").read_text())
        slot = Slot(png_path.parent.name, int(png_path.stem.split("_")[1]))
        assert set(record) >= PROVENANCE_FIELDS
        assert (record["campaign"], record["chain"], record["scene"], record["take"]) == ("aurora-perfume", slot.chain, slot.scene, 0)
        assert record["sha256"] == sha256(png_path.read_bytes())
        with Image.open(png_path) as image:
            assert (record["width"], record["height"]) == image.size
            assert image.size[0] < image.size[1]  # 9:16
        assert record["backend"] == "preview" and record["cache_hit"] is False
        assert [r["asset"] for r in record["references"]] == [r.key for r in shown_references(slot, mode)]
        for reference in record["references"]:
            assert reference["sha256"] == sha256((root / f"{reference['asset']}.png").read_bytes())
        assert "Faceted crystal perfume bottle" in record["prompt"]


def test_user_reference_image_becomes_scene_one_as_is(data_dir, instance):
    result = run_campaign(data_dir, instance, "muse-portrait")
    assert result.success
    root = data_dir / "campaigns" / "muse-portrait"
    assert len(files_of(data_dir, "muse-portrait", ".png")) == 9
    assert len(files_of(data_dir, "muse-portrait", ".json")) == 9
    with Image.open(data_dir / "briefs" / "refs" / "muse-portrait.jpg") as original, Image.open(root / "reference" / "scene_1.png") as stored:
        assert stored.format == "PNG"
        assert stored.convert("RGB").tobytes() == ImageOps.exif_transpose(original).convert("RGB").tobytes()
    record = json.loads((root / "reference" / "scene_1.json").read_text())
    assert (record["backend"], record["model"], record["prompt"], record["references"], record["cost_usd"]) == ("user", "user", "", [], 0.0)
    assert record["source"]["sha256"] == sha256((data_dir / "briefs" / "refs" / "muse-portrait.jpg").read_bytes())


def test_materializations_carry_thumbnail_prompt_references_cost_and_path(data_dir, instance):
    run_campaign(data_dir, instance, "aurora-perfume")
    event = instance.get_latest_materialization_event(AssetKey(["end", "scene_3"]))
    metadata = event.asset_materialization.metadata
    assert metadata["preview"].value.startswith("![end/scene_3](data:image/jpeg;base64,")
    assert len(metadata["preview"].value) < 40_000
    assert "The mist hangs in the sunbeam" in metadata["prompt"].value
    assert metadata["references"].value == [
        {"asset": "end/scene_2", "sha256": sha256((data_dir / "campaigns/aurora-perfume/end/scene_2.png").read_bytes())}
    ]
    assert metadata["cost_usd"].value == 0.0
    assert metadata["path"].value == str(data_dir / "campaigns/aurora-perfume/end/scene_3.png")
    assert event.asset_materialization.tags["dagster/data_version"] == metadata["sha256"].value


def test_preview_runs_are_deterministic(data_dir, instance, tmp_path):
    run_campaign(data_dir, instance, "aurora-perfume")
    first = {p: (data_dir / "campaigns" / "aurora-perfume" / p).read_bytes() for p in files_of(data_dir, "aurora-perfume", ".png")}
    other = tmp_path / "other"
    other.mkdir()
    (other / "briefs").symlink_to(data_dir / "briefs")
    run_campaign(other, instance, "aurora-perfume")
    second = {p: (other / "campaigns" / "aurora-perfume" / p).read_bytes() for p in first}
    assert first == second


def test_storyboard_sheet_shows_every_scene_in_the_same_run(data_dir, instance):
    slots = [Slot(chain, k) for k in range(1, 4) for chain in CHAINS]
    assert run_campaign(data_dir, instance, "muse-portrait", selection=run_selection(slots)).success
    sheet = data_dir / "campaigns" / "muse-portrait" / "storyboard.png"
    with Image.open(sheet) as image:
        assert image.size[1] > image.size[0]  # three rows of 4:5 cells
    metadata = instance.get_latest_materialization_event(AssetKey("storyboard")).asset_materialization.metadata
    assert metadata["images"].value == 9 and metadata["missing"].value == 0
