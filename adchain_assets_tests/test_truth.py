"""What is stored is the truth (issue 9): after any edits, undos and failures, one tick and its run bring every
output in line with the brief, paying only for requests never answered before; the ledger counts every paid call."""

import json

import pytest

from adchain_assets.plan.catalogue import price, tokens_by_modality
from adchain_assets.store.ledger import Ledger
from adchain_assets.store.snapshots import BRIEF_TAG

from .gemini_server import FakeGemini, error_reply, no_image_reply
from .helpers import FIRST_RUN, IMAGES, definitions_for, edit, execute, selected, short_clips, small_images, tick

CAMPAIGN = "aurora-perfume"
SCENE_2 = "The woman holding the bottle up to the window light"


@pytest.fixture
def one_brief(data_dir):
    """The aurora sample alone, with one-second clips."""
    (data_dir / "briefs" / "muse-portrait.yaml").unlink()
    short_clips(data_dir / "briefs" / "aurora-perfume.yaml")
    return data_dir


def outputs(data_dir) -> dict[str, bytes]:
    """Every output file of the campaign (images, clips, storyboard, ad), by name."""
    root = data_dir / "campaigns" / CAMPAIGN
    found = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("scene_*.png")}
    found.update({str(p.relative_to(root)): p.read_bytes() for p in root.rglob("scene_*.mp4")})
    for name in ("storyboard.png", "ad.mp4"):
        found[name] = (root / name).read_bytes()
    return found


def provenance(data_dir, name) -> dict:
    return json.loads((data_dir / "campaigns" / CAMPAIGN / name).with_suffix(".json").read_text())


def run_tick(defs, instance):
    result = tick(defs, instance)
    for request in result.run_requests or []:
        assert execute(defs, instance, request).success
    return result


def scene_text(data_dir, marker):
    text = (data_dir / "briefs" / f"{CAMPAIGN}.yaml").read_text()
    assert marker in text
    return text


def test_undo_runs_and_gives_back_the_first_outputs_byte_for_byte_with_no_call(one_brief, instance, fake_gemini):
    small_images(fake_gemini)  # byte for byte at any size; the checks of small pictures are quick
    path = one_brief / "briefs" / f"{CAMPAIGN}.yaml"
    version_a = path.read_text()
    defs = definitions_for(one_brief, image_backend="gemini")
    assert selected(run_tick(defs, instance))[CAMPAIGN] == FIRST_RUN
    first = outputs(one_brief)
    assert len(fake_gemini.requests) == 12

    edit(path, "The woman spraying the perfume", "The woman spraying the perfume at dusk")  # A -> B
    run_tick(defs, instance)
    calls_after_b = len(fake_gemini.requests)
    assert calls_after_b > 12

    path.write_text(version_a)  # B -> A: undo
    undo = run_tick(defs, instance)
    assert undo.run_requests, "undoing an edit must run"
    assert len(fake_gemini.requests) == calls_after_b, "every request of version A was answered before"
    assert outputs(one_brief) == first
    assert not tick(defs, instance).run_requests


def test_a_failed_run_and_a_later_edit_are_made_up_in_one_tick(one_brief, instance, fake_gemini, monkeypatch):
    monkeypatch.setenv("ADCHAIN_STEP_RETRY_DELAY_S", "0")
    target = "Reference image for scene 3 "
    faults = {"on": True}
    small_images(fake_gemini)  # what is made up depends on the requests, not on the pictures' size
    small = fake_gemini.default_reply

    def answer(request):
        if faults["on"] and request.prompt_text.startswith(target):
            return error_reply(503, "overloaded")
        return small(request)

    fake_gemini.default_reply = answer
    defs = definitions_for(one_brief, image_backend="gemini", step_retry_delay_s=0.0, quick_retries=True)
    [request] = tick(defs, instance).run_requests
    assert not execute(defs, instance, request).success  # the fault outlived the SDK's and the step's retries
    root = one_brief / "campaigns" / CAMPAIGN
    assert not (root / "reference" / "scene_3.png").exists()

    faults["on"] = False
    edit(one_brief / "briefs" / f"{CAMPAIGN}.yaml", "savouring the scent", "savouring the scent slowly")  # scene 4
    union = tick(defs, instance)
    [work] = union.run_requests
    chosen = selected(union)[CAMPAIGN]
    assert {"reference/scene_3", "reference/scene_4"} <= chosen
    assert execute(defs, instance, work).success
    assert {str(p.relative_to(root)) for p in root.rglob("scene_*.png") if "candidates" not in str(p)} >= {
        f"{name}.png" for name in IMAGES}
    assert not tick(defs, instance).run_requests  # all 12 images match the brief


def test_title_only_edit_remakes_storyboard_and_ad_with_no_model_call(one_brief, instance, fake_gemini):
    small_images(fake_gemini)
    defs = definitions_for(one_brief, image_backend="gemini")
    run_tick(defs, instance)
    calls = len(fake_gemini.requests)
    clips = {k: provenance(one_brief, f"clip/scene_{k}.mp4")["created_at"] for k in range(1, 5)}
    edit(one_brief / "briefs" / f"{CAMPAIGN}.yaml", "title: Aurora Eau de Parfum", "title: Aurora Parfum")
    result = run_tick(defs, instance)
    assert selected(result)[CAMPAIGN] == {"storyboard", "ad", "storyboard_pdf", "deliverables"}  # the PDF's cover
    assert len(fake_gemini.requests) == calls
    assert provenance(one_brief, "ad.mp4")["title"].startswith("Aurora Parfum")
    assert {k: provenance(one_brief, f"clip/scene_{k}.mp4")["created_at"] for k in range(1, 5)} == clips


def test_a_duration_edit_remakes_that_clip_the_ad_and_the_report_only(one_brief, instance):
    defs = definitions_for(one_brief)
    run_tick(defs, instance)
    path = one_brief / "briefs" / f"{CAMPAIGN}.yaml"
    text = path.read_text()
    scenes = text.split("  - subjects:")
    assert len(scenes) == 5
    scenes[2] = scenes[2].replace("duration_s: 1", "duration_s: 6")
    path.write_text("  - subjects:".join(scenes))
    result = run_tick(defs, instance)
    # the report lists every clip; the PDF shows the scene's length
    assert selected(result)[CAMPAIGN] == {"clip/scene_2", "ad", "report", "storyboard_pdf", "deliverables"}
    assert provenance(one_brief, "clip/scene_2.mp4")["requested_duration_s"] == 6


def test_removing_scene_four_leaves_a_three_scene_ad_and_storyboard(one_brief, instance):
    defs = definitions_for(one_brief)
    run_tick(defs, instance)
    path = one_brief / "briefs" / f"{CAMPAIGN}.yaml"
    text = path.read_text()
    path.write_text(text[: text.rindex("  - subjects:")])
    result = run_tick(defs, instance)
    assert {"storyboard", "ad"} <= selected(result)[CAMPAIGN]
    assert [c["asset"] for c in provenance(one_brief, "ad.mp4")["clips"]] == [f"clip/scene_{k}" for k in (1, 2, 3)]
    assert len(provenance(one_brief, "storyboard.png")["inputs"]) == 9
    assert (one_brief / "campaigns" / CAMPAIGN / "reference" / "scene_4.png").exists()  # nothing made is lost


def test_a_brief_edited_while_its_run_waits_does_not_leak_into_that_run(one_brief, instance):
    defs = definitions_for(one_brief)
    [request] = tick(defs, instance).run_requests
    sha = request.tags[BRIEF_TAG]
    edit(one_brief / "briefs" / f"{CAMPAIGN}.yaml", "alone on a white marble vanity at dawn", "alone on a wooden shelf")
    assert execute(defs, instance, request).success
    root = one_brief / "campaigns" / CAMPAIGN
    for path in root.rglob("scene_*.json"):
        assert json.loads(path.read_text())["brief_sha256"] == sha, path
    assert "white marble vanity at dawn" in provenance(one_brief, "reference/scene_1.png")["prompt"]
    assert "reference/scene_1" in selected(tick(defs, instance))[CAMPAIGN]  # the next tick sees the edit


def test_the_ledger_counts_every_billed_reply_and_a_refusal_is_held(one_brief, instance, fake_gemini, capsys):
    path = one_brief / "briefs" / f"{CAMPAIGN}.yaml"
    path.write_text(path.read_text().replace("reference_mode: chain", "reference_mode: chain\ntakes_per_image: 3"))
    refused = "Reference image for scene 4 "
    state = {"503": 1}
    small_images(fake_gemini)  # billed as the full-size reply: the bill depends on the usage, not the pixels
    small = fake_gemini.default_reply

    def answer(request):
        if request.prompt_text.startswith("Reference image for scene 2 ") and state["503"]:
            state["503"] -= 1
            return error_reply(503, "overloaded")  # retried by the SDK: billed nothing
        if request.prompt_text.startswith(refused):
            return no_image_reply("IMAGE_SAFETY", message="blocked", prompt_tokens=321)  # billed its input
        return small(request)

    fake_gemini.default_reply = answer
    defs = definitions_for(one_brief, image_backend="gemini")
    [request] = tick(defs, instance).run_requests
    assert not execute(defs, instance, request).success
    sent = [r.reply_body for r in fake_gemini.requests if r.reply_body and r.reply_body.get("usageMetadata")]
    expected = sum(price(b["modelVersion"], tokens_by_modality(b["usageMetadata"])) for b in sent)
    spend = Ledger(str(one_brief)).spend(CAMPAIGN)
    assert spend.paid_calls == len(sent)
    assert spend.spend_usd == pytest.approx(expected, abs=1e-6)
    assert round(spend.spend_usd, 2) == round(expected, 2)

    asked = len(fake_gemini.requests)
    again = tick(defs, instance)
    assert all("reference/scene_4" not in s for s in selected(again).values())
    assert len(fake_gemini.requests) == asked  # the refusal is not paid for again


@pytest.mark.subprocess
def test_two_campaigns_with_three_takes_never_exceed_the_pool_at_the_server(cli_env, data_dir):
    """Each candidate call holds the step's model-pool slot: two CLI runs at once, 3 takes per image, pool of 4."""
    import subprocess
    import time as clock

    from .helpers import ADCHAIN, PROJECT

    briefs = data_dir / "briefs"
    text = (briefs / "aurora-perfume.yaml").read_text().replace("reference_mode: chain", "reference_mode: chain\ntakes_per_image: 3")
    text = "  - subjects:".join(text.split("  - subjects:")[:3])  # two scenes each: 6 images x 3 takes
    (briefs / "aurora-perfume.yaml").write_text(text)
    (briefs / "aurora-twin.yaml").write_text(text.replace("mood: intimate, luminous", "mood: bold"))  # other prompts: no shared cache hits
    (briefs / "muse-portrait.yaml").unlink()
    with FakeGemini(latency_s=0.3) as server:
        env = {**cli_env, "ADCHAIN_IMAGE_BACKEND": "gemini", "GEMINI_API_KEY": "k", "GEMINI_BASE_URL": server.base_url}
        # the instance is made first: concurrent first use of a fresh sqlite instance is issue 14's to fix
        subprocess.run([ADCHAIN, "status", "aurora-perfume"], env=env, cwd=PROJECT, capture_output=True, check=True)
        started = clock.monotonic()
        runs = [subprocess.Popen([ADCHAIN, "materialize", name], env=env, cwd=PROJECT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for name in ("aurora-perfume", "aurora-twin")]
        outs = [run.communicate(timeout=900) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outs
        print(f"2 campaigns x 6 images x 3 takes: {len(server.requests)} calls, at most {server.max_in_flight} in flight,"
              f" {clock.monotonic() - started:.1f}s")
        assert len(server.requests) == 2 * 6 * 3
        assert server.max_in_flight <= 4


def test_a_yml_brief_is_accepted_like_a_yaml_one(one_brief, instance):
    (one_brief / "briefs" / f"{CAMPAIGN}.yaml").rename(one_brief / "briefs" / f"{CAMPAIGN}.yml")
    defs = definitions_for(one_brief)
    result = run_tick(defs, instance)
    assert selected(result)[CAMPAIGN] == FIRST_RUN
    assert not tick(defs, instance).run_requests


def test_a_large_user_photo_is_sent_downscaled_and_stored_exact(data_dir, instance, fake_gemini):
    from PIL import Image

    from .helpers import run_campaign

    photo = data_dir / "briefs" / "refs" / "big.png"
    Image.new("RGB", (4000, 3000), (200, 120, 90)).save(photo)
    path = data_dir / "briefs" / "muse-portrait.yaml"
    text = path.read_text()
    path.write_text(text.replace("reference_image: refs/muse-portrait.jpg", "reference_image: refs/big.png"))
    from adchain_assets.plan.references import Slot

    from .helpers import run_selection

    result = run_campaign(data_dir, instance, "muse-portrait", image_backend="gemini",
                          selection=run_selection([Slot("reference", 1), Slot("reference", 2)])[:2])
    assert result.success
    stored = Image.open(data_dir / "campaigns" / "muse-portrait" / "reference" / "scene_1.png")
    assert stored.size == (4000, 3000)
    [sent] = fake_gemini.requests[0].images
    assert max(Image.open(__import__("io").BytesIO(sent)).size) == 2048
