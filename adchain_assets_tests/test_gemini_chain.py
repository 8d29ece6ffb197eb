"""Whole campaigns on the gemini backend against a local Gemini-protocol server: the bytes we send and keep."""

import io
import json

import pytest
from dagster import AssetKey
from PIL import Image

from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL
from adchain_assets.plan.references import Slot, shown_references

from .gemini_server import FakeGemini, no_image_reply
from .helpers import run_campaign


def pixels(data: bytes) -> tuple:
    with Image.open(io.BytesIO(data)) as image:
        return image.size, image.mode, image.tobytes()


def stored(data_dir, campaign):
    root = data_dir / "campaigns" / campaign
    return {
        f"{p.parent.name}/{p.stem}": (p.read_bytes(), json.loads(p.with_suffix(".json").read_text()))
        for p in root.rglob("*.png") if "briefs" not in p.relative_to(root).parts  # not the pinned brand logo
    }


@pytest.mark.parametrize("campaign, mode", [("aurora-perfume", "chain"), ("aurora-perfume", "anchored"), ("muse-portrait", "anchored")])
def test_requests_carry_exactly_the_contract_references_and_files_keep_the_returned_pixels(data_dir, instance, fake_gemini, campaign, mode):
    brief_path = data_dir / "briefs" / f"{campaign}.yaml"
    text = brief_path.read_text()
    brief_path.write_text(text.replace("reference_mode: chain", f"reference_mode: {mode}").replace("reference_mode: anchored", f"reference_mode: {mode}"))
    assert run_campaign(data_dir, instance, campaign, image_backend="gemini").success

    images = stored(data_dir, campaign)
    by_prompt = {request.prompt_text: request for request in fake_gemini.requests}
    generated = {key: value for key, value in images.items() if value[1]["backend"] == "gemini"}
    assert len(fake_gemini.requests) == len(generated) == (12 if campaign == "aurora-perfume" else 8)
    for key, (png, record) in generated.items():
        request = by_prompt[record["prompt"]]
        slot = Slot.parse(key)
        expected_refs = [r.key for r in shown_references(slot, mode)]
        assert [r["asset"] for r in record["references"]] == expected_refs
        assert [pixels(sent) for sent in request.images] == [pixels(images[ref][0]) for ref in expected_refs], key
        assert pixels(png) == pixels(request.returned_image), key
        assert request.aspect_ratio == ("9:16" if campaign == "aurora-perfume" else "4:5")
        assert request.response_modalities == ["IMAGE"]
        assert request.model == DEFAULT_IMAGE_MODEL  # the catalogue's current default
        assert record["cost_usd"] > 0.03 and record["model"]


def test_a_safety_block_fails_that_image_with_its_reason_and_nothing_downstream_runs(data_dir, instance, fake_gemini):
    def answer(request):
        if request.prompt_text.startswith("Reference image for scene 2 "):
            return no_image_reply("IMAGE_SAFETY", message="Unable to show the generated image.")
        return FakeGemini.default_reply(fake_gemini, request)

    fake_gemini.default_reply = answer
    result = run_campaign(data_dir, instance, "aurora-perfume", image_backend="gemini")
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "reference__scene_2"
    message = failure.step_failure_data.error.message
    assert "reference/scene_2" in message and "IMAGE_SAFETY" in message and "Unable to show" in message
    made = set(stored(data_dir, "aurora-perfume"))
    assert made == {"reference/scene_1", "start/scene_1", "end/scene_1"}
    assert instance.get_latest_materialization_event(AssetKey(["end", "scene_4"])) is None


def test_the_gemini_backend_without_a_key_fails_with_a_clear_message(data_dir, instance, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    result = run_campaign(data_dir, instance, "aurora-perfume", image_backend="gemini")
    assert not result.success
    messages = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    assert any("GEMINI_API_KEY is not set" in m for m in messages), messages
