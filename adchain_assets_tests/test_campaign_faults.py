"""The fault matrix at campaign level: every campaign ends complete and correct, or failed with the image and
the reason; nothing already made is lost or attached to the wrong scene."""

import json

import pytest
from dagster import materialize

from adchain_assets.defs.resources import ImageModel
from adchain_assets.plan.references import CHAINS, Slot

from .gemini_server import FakeGemini, Hang, Reply, error_reply, no_image_reply
from .helpers import definitions_for, run_selection, snapshot

IMAGES = [Slot(chain, k) for k in range(1, 5) for chain in CHAINS]
TARGET = "Reference image for scene 2 "  # the faults hit reference/scene_2's requests

FAULTS = {
    "429 x3 then success": ([error_reply(429, "quota")] * 3, None),
    "503 once": ([error_reply(503, "overloaded")], None),
    "a hanging call": ([Hang(5.0)], None),
    "NO_IMAGE once": ([no_image_reply("NO_IMAGE")], None),
    "a malformed body": ([Reply(200, b"{not json")], None),
    "IMAGE_SAFETY": ([no_image_reply("IMAGE_SAFETY", message="blocked")], "IMAGE_SAFETY"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_ends_complete_and_correct_or_failed_with_the_reason(data_dir, instance, fake_gemini, fault):
    scripted, final_reason = FAULTS[fault]
    pending = list(scripted)

    def answer(request):
        if request.prompt_text.startswith(TARGET) and pending:
            return pending.pop(0)
        return FakeGemini.default_reply(fake_gemini, request)

    fake_gemini.default_reply = answer
    defs = definitions_for(data_dir, image_backend="gemini")
    model = ImageModel(backend="gemini", api_key="test-key-not-secret", base_url=fake_gemini.base_url, timeout_s=2.0,
                       initial_delay_s=0.02)
    instance.add_dynamic_partitions("campaigns", ["aurora-perfume"])
    result = materialize(list(defs.assets), resources={**defs.resources, "image_model": model}, instance=instance,
                         partition_key="aurora-perfume", selection=run_selection(IMAGES)[:13], raise_on_error=False)
    root = data_dir / "campaigns" / "aurora-perfume"
    made = snapshot(data_dir, "aurora-perfume")
    for name in made:  # whatever exists is whole, matches its provenance and belongs to its own slot
        record = json.loads((root / name).with_suffix(".json").read_text())
        assert f"{record['chain']}/scene_{record['scene']}.png" == name
        assert record["prompt"] == next(r.prompt_text for r in fake_gemini.requests if r.prompt_text == record["prompt"])
    if final_reason is None:
        assert result.success, fault
        assert len(made) == 12
    else:
        assert not result.success
        [failure] = [e for e in result.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.message
        assert failure.step_key == "reference__scene_2" and final_reason in message and "reference/scene_2" in message
        assert set(made) == {"reference/scene_1.png", "start/scene_1.png", "end/scene_1.png"}
        assert sum(r.prompt_text.startswith(TARGET) for r in fake_gemini.requests) == 1  # final: asked once
