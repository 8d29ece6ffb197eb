"""Identity and product consistency as asset checks, the campaign report, and best-of-N takes."""

import io
import json
from pathlib import Path

import pandas as pd
from dagster import AssetKey
from PIL import Image

from adchain_assets.plan.references import CHAINS, Slot

from .gemini_server import FakeGemini, image_reply
from .helpers import run_campaign, run_selection, short_clips

FACES = Path(__file__).parent / "testdata" / "faces"
MUSE = [Slot(chain, k) for k in range(1, 4) for chain in CHAINS]


def photo_png(name: str) -> bytes:
    buffer = io.BytesIO()
    with Image.open(FACES / name) as image:
        image.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def answer_with(server: FakeGemini, pick):
    """The model answers every request with a real photo chosen by ``pick(request)``."""
    server.default_reply = lambda request: image_reply(photo_png(pick(request)))


def evaluations(result) -> dict[tuple[str, str], object]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_a_user_photo_campaign_shows_cross_and_self_identity_numbers_for_every_image_with_the_character(data_dir, instance, fake_gemini):
    answer_with(fake_gemini, lambda request: "leslie_2.jpg")  # the same woman as the brief's photo (leslie_1)
    result = run_campaign(data_dir, instance, "muse-portrait", selection=run_selection(MUSE)[:10] + [AssetKey("report")], image_backend="gemini")
    assert result.success
    checks = evaluations(result)
    for slot in MUSE:
        identity = checks[(slot.key, "identity")]
        cross = identity.metadata["muse_cross_distance"].value
        assert identity.passed and (0 < cross < 0.6 or (slot.key == "reference/scene_1" and cross == 0)), (slot, cross)
        detail = identity.metadata["muse"].value
        assert detail["anchor"] == "photo refs/muse-portrait.jpg"
        if slot.scene > 1:
            assert detail["self"]["previous"] == f"{slot.chain}/scene_{slot.scene - 1}"
            assert detail["self"]["distance"] < 0.6
    report = pd.read_csv(data_dir / "campaigns" / "muse-portrait" / "report.csv")
    assert set(report["output"]) == {slot.key for slot in MUSE}
    assert report["muse_distance"].between(0, 0.6).all()
    assert report["muse_self_distance"].notna().sum() == 6  # scenes 2 and 3 of each chain
    assert report["identity_check"].all()


def test_a_different_woman_fails_the_identity_check_and_with_blocking_stops_the_chain(data_dir, instance, fake_gemini):
    brief = data_dir / "briefs" / "muse-portrait.yaml"
    brief.write_text(brief.read_text() + "checks:\n  blocking: true\n")
    answer_with(fake_gemini, lambda r: "obama_1.jpg" if r.prompt_text.startswith("Reference image for scene 2 ") else "leslie_2.jpg")
    result = run_campaign(data_dir, instance, "muse-portrait", selection=run_selection(MUSE)[:10], image_backend="gemini")
    checks = evaluations(result)
    failed = checks[("reference/scene_2", "identity")]
    assert not failed.passed and failed.severity.value == "ERROR"
    assert failed.metadata["muse_cross_distance"].value > 0.6
    made = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() for e in [e.event_specific_data.materialization]}
    assert "reference/scene_2" in made and "reference/scene_3" not in made and "start/scene_2" not in made


def test_best_of_three_keeps_the_most_consistent_take_and_records_the_others(data_dir, instance, fake_gemini):
    brief = data_dir / "briefs" / "muse-portrait.yaml"
    brief.write_text(brief.read_text() + "takes_per_image: 3\n")
    people = iter(["obama_1.jpg", "leslie_2.jpg", "biden_1.jpg"] * 20)
    answer_with(fake_gemini, lambda request: next(people))
    result = run_campaign(data_dir, instance, "muse-portrait", selection=run_selection([Slot("reference", 1), Slot("reference", 2)])[:2],
                          image_backend="gemini")
    assert result.success
    assert len(fake_gemini.requests) == 3
    record = json.loads((data_dir / "campaigns" / "muse-portrait" / "reference" / "scene_2.json").read_text())
    candidates = record["candidates"]
    assert len(candidates) == 3
    best = max(candidates, key=lambda c: c["score"])
    assert best["kept"] and best["sha256"] == record["sha256"]
    assert sum(c["kept"] for c in candidates) == 1
    for candidate in candidates:
        assert (data_dir / "campaigns" / "muse-portrait" / candidate["path"]).exists()
    assert record["consistency"]["muse"]["value"] < 0.6  # the kept take is the woman of the photo


def test_preview_frames_say_their_characters_are_not_scored_rather_than_failing(data_dir, instance):
    """The preview backend draws placeholders, not faces: its images' identity is not scored (no face search
    runs), and the check, the provenance, the report and the storyboard say so; products are still scored."""
    scenes = [Slot(chain, k) for k in range(1, 5) for chain in CHAINS]
    short_clips(data_dir / "briefs" / "aurora-perfume.yaml")
    result = run_campaign(data_dir, instance, "aurora-perfume", selection=run_selection(scenes))
    assert result.success
    checks = evaluations(result)
    identity = checks[("reference/scene_2", "identity")]
    assert identity.passed
    assert identity.metadata["note"].text == "not scored: preview frames have no faces"
    assert identity.metadata["woman_cross_distance"].text == "not scored: preview frames have no faces"
    assert "bottle_score" in checks[("reference/scene_2", "product")].metadata
    root = data_dir / "campaigns" / "aurora-perfume"
    woman = json.loads((root / "reference" / "scene_2.json").read_text())["consistency"]["woman"]
    assert woman["passed"] is None and woman["note"] == "not scored: preview frames have no faces"
    report = pd.read_csv(root / "report.csv").set_index("output")
    assert report.loc["reference/scene_2", "identity_check"] == "not scored: preview frames have no faces"
    assert report.loc["reference/scene_1", "product_check"] in (True, "True")

    from adchain_assets.media.storyboard import score_text

    assert score_text({"woman": woman}) == "woman not scored"
