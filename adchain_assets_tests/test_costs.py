"""Know the price before paying (issue 21): every plan has an estimate, checked against what the local Gemini and
Veo servers bill, and a campaign's budget holds before a run (not launched) and during one (no paid call once it
is reached, the rest held as BUDGET until the budget changes)."""

import csv
import json
from dataclasses import replace

import dagster as dg
import pytest

from adchain_assets.brief.model import load_brief
from adchain_assets.cli.main import main
from adchain_assets.definitions import build_definitions
from adchain_assets.defs.costs import ESTIMATE_TAG
from adchain_assets.defs.resources import VideoModel
from adchain_assets.plan.calls import BUDGET, OK, Call, LatestCalls
from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL, price
from adchain_assets.plan.estimate import Estimate, OutputEstimate, estimate_plan
from adchain_assets.plan.plan import Stored, plan_campaign
from adchain_assets.plan.requests import Maker, Parent, build_request, output_names
from adchain_assets.providers.video.base import VideoGenerationError, VideoRequest
from adchain_assets.providers.video.preview import PreviewVideoGenerator
from adchain_assets.settings import Settings, SettingsError
from adchain_assets.store.budget import BudgetedVideos
from adchain_assets.store.ledger import CallMeter, Ledger

from .gemini_server import FakeGemini, image_size, make_png
from .helpers import CLIPS, IMAGES, SAMPLE_BRIEFS, edit, execute, small_images, tick
from .veo_server import FakeVeo

CAMPAIGN = "aurora-perfume"
KEY = "test-key-not-secret"
GEMINI, VEO = Maker("gemini", DEFAULT_IMAGE_MODEL), Maker("veo", DEFAULT_VIDEO_MODEL)


# --- the estimate, pure -----------------------------------------------------------------------------------------

def sample(text_change=None):
    loaded = load_brief(SAMPLE_BRIEFS / f"{CAMPAIGN}.yaml", max_scenes=8)
    if text_change:
        loaded = replace(loaded, brief=loaded.brief.model_copy(update=text_change))
    return loaded


def priced(loaded, stored, cache=None, budget=None, image=GEMINI, video=VEO):
    plan = plan_campaign(loaded, stored, image_maker=image, video_maker=video, budget_usd=budget)
    plan.estimate = estimate_plan(plan, loaded, stored, image_maker=image, video_maker=video,
                                  cached=(cache or {}).get, budget_usd=budget)
    return plan


def test_a_fresh_campaign_is_priced_from_the_catalogue_with_takes_and_clip_seconds():
    fresh = Stored(records={name: None for name in output_names(4)})
    one = priced(sample(), fresh).estimate
    two = priced(sample({"takes_per_image": 2}), fresh).estimate
    image = one.outputs["reference/scene_2"]
    assert image.basis == "nominal" and image.calls == 1
    assert image.usd == pytest.approx(1120 * 60e-6, rel=0.02)  # a 1K image of the default model, plus its prompt
    assert two.outputs["reference/scene_2"].usd == pytest.approx(2 * image.usd, abs=1e-6)
    assert two.outputs["reference/scene_2"].calls == 2
    assert one.outputs["clip/scene_1"].usd == pytest.approx(4 * 0.15) and one.outputs["clip/scene_1"].calls == 1
    assert {one.outputs[name].basis for name in ("storyboard", "ad", "report")} == {"no model call"}
    assert one.usd == pytest.approx(sum(o.usd for o in one.outputs.values()))
    assert one.calls == 16
    assert priced(sample(), fresh, image=Maker("preview", "preview-storyboard-v1"),
                  video=Maker("preview", "preview-dissolve-v1")).estimate.usd == 0


def test_an_unknown_price_is_never_zero_and_a_budget_refuses_it_naming_the_model():
    fresh = Stored(records={name: None for name in output_names(4)})
    unknown = Maker("gemini", "some-future-image-model")
    plan = priced(sample(), fresh, image=unknown)
    assert plan.estimate.usd is None and plan.to_json()["estimate_usd"] is None
    assert plan.estimate.outputs["reference/scene_1"].usd is None
    assert plan.estimate.outputs["clip/scene_1"].usd == pytest.approx(0.6)
    assert plan.estimate.refusal(CAMPAIGN) is None  # no budget: launched, its cost recorded as unknown
    refusal = priced(sample(), fresh, image=unknown, budget=100.0).estimate.refusal(CAMPAIGN)
    assert refusal.startswith(f"{CAMPAIGN}: plan price unknown") and "some-future-image-model" in refusal


def test_the_refusal_is_one_line_saying_plan_spend_and_budget():
    estimate = Estimate({"reference/scene_1": OutputEstimate(0.47, "nominal", 7)}, spent_usd=0.12, budget_usd=0.30)
    assert estimate.refusal(CAMPAIGN) == (
        "aurora-perfume: plan ~$0.47, spent $0.12 of $0.30: raise budget_usd or narrow the change")
    assert Estimate(dict(estimate.outputs), 0.12, 0.59).refusal(CAMPAIGN) is None  # 0.12 + 0.47 fits
    assert Estimate({"ad": OutputEstimate(0.0, "cached")}, 0.5, 0.3).refusal(CAMPAIGN) is None  # free work runs


def test_observed_usage_prices_the_next_calls_and_cached_requests_cost_nothing_down_the_chain():
    loaded = sample()
    fresh = Stored(records={name: None for name in output_names(4)})
    first = priced(loaded, fresh)
    # the model billed 2000 image tokens a call here: the mean of this campaign's calls prices the next ones
    usage = {"input": {"TEXT": 300}, "output": {"IMAGE": 2000}, "thinking": 0}
    calls = [Call(CAMPAIGN, "start/scene_1", f"k{i}", "gemini", DEFAULT_IMAGE_MODEL, "image", 1, OK, usage=usage,
                  cost_usd=price(DEFAULT_IMAGE_MODEL, usage)) for i in range(3)]
    observed = priced(loaded, Stored(records=fresh.records, calls=calls)).estimate.outputs["reference/scene_2"]
    assert observed.basis == "observed (mean of 3 calls)"
    assert observed.usd == pytest.approx(price(DEFAULT_IMAGE_MODEL, usage))

    # reference/scene_1's request is cached, with the pixels it holds: reference/scene_2's request is then known,
    # and cached too, so both cost nothing; what follows is priced as new calls
    key_1 = first.requests["reference/scene_1"].call_keys[0]
    cache = {key_1: {"sha256": "a" * 64, "pixels_sha256": "b" * 64}}
    chained = priced(loaded, fresh, cache)
    assert chained.estimate.outputs["reference/scene_1"].basis == "cached"
    parent = Parent("reference/scene_1", {"sha256": "a" * 64, "pixels_sha256": "b" * 64, "take": 0})
    key_2 = build_request("reference/scene_2", loaded, {"reference/scene_1": parent}, image_maker=GEMINI).call_keys[0]
    cache[key_2] = {"sha256": "c" * 64}  # an entry written before pixels_sha256 was kept: nothing to chain on
    chained = priced(loaded, fresh, cache).estimate
    assert chained.outputs["reference/scene_2"].usd == 0 and chained.outputs["reference/scene_2"].basis == "cached"
    assert chained.outputs["reference/scene_3"].basis == "nominal"
    assert chained.usd == pytest.approx(first.estimate.usd - 2 * first.estimate.outputs["reference/scene_2"].usd,
                                        rel=0.01)


def test_a_budget_refusal_is_held_only_under_the_budget_it_was_refused_at():
    refused = Call(CAMPAIGN, "end/scene_2", "k", "gemini", DEFAULT_IMAGE_MODEL, "image", 1, BUDGET, final=True,
                   detail={"budget_usd": 0.3, "spent_usd": 0.31})
    latest = LatestCalls([refused])
    assert latest.refusal("end/scene_2", ["k"], 0.3) == refused
    assert latest.refusal("end/scene_2", ["k"], 0.5) is None
    assert latest.refusal("end/scene_2", ["k"], None) is None
    safety = replace(refused, outcome="IMAGE_SAFETY", detail={})
    assert LatestCalls([safety]).refusal("end/scene_2", ["k"], 0.5) == safety  # a model's verdict holds whatever


def test_a_clip_is_not_started_over_budget_but_a_started_one_is_resumed(tmp_path):
    ledger = Ledger(str(tmp_path))
    usage = {"seconds": 4, "resolution": "720p"}
    ledger.record(Call(CAMPAIGN, "clip/scene_1", "k1", "veo", DEFAULT_VIDEO_MODEL, "video", 1, OK, usage=usage,
                       cost_usd=0.6))
    meter = CallMeter(ledger, CAMPAIGN, "clip/scene_2", "k2")
    frame = make_png(b"frame", image_size("9:16"))
    request = VideoRequest("a clip", frame, frame, "9:16")

    class Started:  # a stored operation (the cache's OperationSlot): this clip is being paid for already
        def load(self):
            return {"operation": "models/veo/operations/1"}

    assert BudgetedVideos(PreviewVideoGenerator(), 0.6).generate(request, meter=meter, resume=Started()).mp4
    with pytest.raises(VideoGenerationError) as refused:
        BudgetedVideos(PreviewVideoGenerator(), 0.6).generate(request, meter=meter)
    assert refused.value.reason == BUDGET and not refused.value.retryable
    [record] = [c for c in ledger.calls(CAMPAIGN) if c.outcome == BUDGET]
    assert (record.output, record.request_sha256, record.final, record.usage) == ("clip/scene_2", "k2", True, {})
    assert record.detail == {"budget_usd": 0.6, "spent_usd": 0.6}
    assert ledger.spend(CAMPAIGN).spend_usd == 0.6  # a refusal costs nothing


def test_a_budget_must_be_a_number_of_zero_or_more(tmp_path, capsys, monkeypatch):
    text = (SAMPLE_BRIEFS / f"{CAMPAIGN}.yaml").read_text()
    for value, reason in (("-0.5", "greater than or equal to 0"), ("lots", "valid number")):
        path = tmp_path / f"{CAMPAIGN}.yaml"
        path.write_text(text + f"budget_usd: {value}\n")
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}: budget_usd: " in err and reason in err
    for value in ("-1", "ten", "nan"):
        with pytest.raises(SettingsError, match="ADCHAIN_BUDGET_USD"):
            Settings.from_env({"ADCHAIN_BUDGET_USD": value})
    assert Settings.from_env({"ADCHAIN_BUDGET_USD": "2.5"}).budget_usd == 2.5
    monkeypatch.setenv("ADCHAIN_BUDGET_USD", "-1")
    assert main(["validate", str(SAMPLE_BRIEFS / f"{CAMPAIGN}.yaml")]) == 2
    assert "ADCHAIN_BUDGET_USD='-1'" in capsys.readouterr().err


# --- campaigns against the local Gemini and Veo servers --------------------------------------------------------

@pytest.fixture
def servers(monkeypatch, tmp_path, data_dir):
    """Fake Gemini (images) and fake Veo (clips); the environment of the `adchain` command set for both."""
    (data_dir / "briefs" / "muse-portrait.yaml").unlink()
    with FakeGemini(api_key=KEY) as gemini, FakeVeo(api_key=KEY) as veo:
        for name, value in {"GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": gemini.base_url, "ADCHAIN_DATA_DIR": str(data_dir),
                            "ADCHAIN_IMAGE_BACKEND": "gemini", "ADCHAIN_VIDEO_BACKEND": "veo",
                            "DAGSTER_HOME": str(tmp_path / "home")}.items():
            monkeypatch.setenv(name, value)
        for name in ("ADCHAIN_STORAGE_URL", "ADCHAIN_IMAGE_MODEL", "ADCHAIN_VIDEO_MODEL", "ADCHAIN_BUDGET_USD"):
            monkeypatch.delenv(name, raising=False)
        yield gemini, veo


def definitions(data_dir, veo):
    """The project's definitions over ``data_dir``, Veo at the fake's address with short polls."""
    settings = replace(Settings.from_env(), data_dir=str(data_dir), storage="", step_retry_delay_s=0.0)
    video = VideoModel(backend="veo", api_key=KEY, base_url=veo.base_url, poll_interval_s=0.01, max_wait_s=30,
                       initial_delay_s=0.01)
    return build_definitions(settings, {"video_model": video})


def plan_json(capsys) -> dict:
    capsys.readouterr()
    assert main(["plan", CAMPAIGN, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def run_tick(defs, instance):
    result = tick(defs, instance)
    return result, [execute(defs, instance, request) for request in result.run_requests or []]


def test_a_fresh_campaigns_estimate_is_within_ten_percent_of_its_bill_and_a_look_edit_shows_the_whole_price(
        servers, data_dir, instance, capsys):
    gemini, veo = servers
    small_images(gemini)
    before = plan_json(capsys)
    assert {e["asset"] for e in before["outdated"]} >= IMAGES | CLIPS
    assert all(e["estimate_usd"] > 0 and e["estimate"] == "nominal" for e in before["outdated"] if e["asset"] in IMAGES)
    assert before["estimate_usd"] == pytest.approx(sum(e["estimate_usd"] for e in before["outdated"]))

    defs = definitions(data_dir, veo)
    result, runs = run_tick(defs, instance)
    [request] = result.run_requests
    assert request.tags[ESTIMATE_TAG] == f"{before['estimate_usd']:.4f}"
    assert all(run.success for run in runs)
    spent = Ledger(str(data_dir)).spend(CAMPAIGN)
    assert spent.paid_calls == 16 and len(gemini.requests) == 12 and len(veo.starts) == 4
    assert before["estimate_usd"] == pytest.approx(spent.spend_usd, rel=0.10)

    after = plan_json(capsys)
    assert after["outdated"] == [] and after["estimate_usd"] == 0
    with open(data_dir / "campaigns" / CAMPAIGN / "report.csv", newline="") as report:
        rows = {row["output"]: row for row in csv.DictReader(report)}
    assert set(rows) == IMAGES | CLIPS  # each with its estimate beside what its calls cost
    planned = {e["asset"]: e["estimate_usd"] for e in before["outdated"]}
    for name, row in rows.items():
        assert float(row["estimate_usd"]) == pytest.approx(planned[name], abs=1e-6)
        assert float(row["run_cost_usd"]) == pytest.approx(float(row["cost_usd"]), abs=1e-6) and row["estimate"]

    edit(data_dir / "briefs" / f"{CAMPAIGN}.yaml", "35 mm film grain", "16 mm film grain")  # look: every image
    look = plan_json(capsys)
    priced = {e["asset"]: e for e in look["outdated"]}
    assert set(priced) >= IMAGES | CLIPS and all(priced[name]["estimate_usd"] > 0 for name in IMAGES | CLIPS)
    assert priced["reference/scene_1"]["estimate"] == "observed (mean of 12 calls)"
    assert look["estimate_usd"] == pytest.approx(spent.spend_usd, rel=0.10)  # the whole campaign again
    assert len(gemini.requests) == 12 and Ledger(str(data_dir)).spend(CAMPAIGN) == spent  # nothing ran


def test_a_budget_below_the_plan_launches_nothing_and_says_why(servers, data_dir, instance, capsys):
    gemini, veo = servers
    path = data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    path.write_text(path.read_text() + "budget_usd: 0.30\n")
    estimate = plan_json(capsys)["estimate_usd"]
    line = f"{CAMPAIGN}: plan ~${estimate:.2f}, spent $0.00 of $0.30: raise budget_usd or narrow the change"

    result = tick(definitions(data_dir, veo), instance)
    assert not result.run_requests and line in result.skip_reason.skip_message

    assert main(["materialize", CAMPAIGN]) == 2
    assert line in capsys.readouterr().err
    assert not gemini.requests and not veo.starts
    with dg.DagsterInstance.get() as home:  # the command's instance (DAGSTER_HOME): no run
        assert not home.get_runs()
    assert main(["status", CAMPAIGN, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["budget_usd"], status["remaining_usd"], status["spend_usd"]) == (0.30, 0.30, 0.0)


def two_scenes(path, budget: float) -> None:
    """The sample brief with its first two scenes only, and ``budget``."""
    text = path.read_text()
    head, *scenes = text.split("  - subjects:")
    path.write_text(head + "  - subjects:".join([""] + scenes[:2]) + f"budget_usd: {budget}\n")


def test_a_budget_that_runs_out_half_way_stops_the_calls_and_a_raised_one_finishes_without_paying_twice(
        servers, data_dir, instance, capsys):
    gemini, veo = servers
    path = data_dir / "briefs" / f"{CAMPAIGN}.yaml"

    small_images(gemini, bill_factor=3)  # the model bills three times the catalogue's nominal image tokens
    two_scenes(path, 10.0)
    estimate = plan_json(capsys)["estimate_usd"]  # 6 images at 1120 tokens and 2 clips of 4 s: about $1.60
    budget = round(estimate * 1.1, 2)  # launched, then the real bill outgrows it
    two_scenes(path, budget)
    defs = definitions(data_dir, veo)
    result, runs = run_tick(defs, instance)
    assert result.run_requests and not runs[0].success

    ledger = Ledger(str(data_dir))
    calls = ledger.calls(CAMPAIGN)
    paid = [c for c in calls if c.usage]
    refused = {c.output for c in calls if c.outcome == BUDGET}
    assert refused and all(c.final for c in calls if c.outcome == BUDGET)
    spent = ledger.spend(CAMPAIGN).spend_usd
    # in process, one call is in flight at a time: each was admitted under the budget
    assert spent - max(c.cost_usd for c in paid) < budget <= spent
    failures = [e.step_failure_data.error.message for e in runs[0].all_events if e.is_step_failure]
    assert failures and all("budget reached" in message for message in failures)

    plan = plan_json(capsys)
    held = {e["asset"]: e["reason"] for e in plan["held"]}
    assert all(held[name] == "final failure: BUDGET" for name in refused)
    for _ in range(2):  # what is not held (the report, made from what exists) costs nothing; no call is made
        run_tick(defs, instance)
    assert ledger.spend(CAMPAIGN).spend_usd == spent and not tick(defs, instance).run_requests

    two_scenes(path, 10.0)  # the budget is raised: the next tick finishes the campaign
    result, runs = run_tick(defs, instance)
    assert result.run_requests and all(run.success for run in runs)
    assert plan_json(capsys)["outdated"] == []
    made = [c for c in ledger.calls(CAMPAIGN) if c.usage and c.outcome == OK]
    keys = [c.request_sha256 for c in made]
    assert len(keys) == len(set(keys)) == 8  # 6 images and 2 clips, each paid once
    assert len(gemini.requests) == 6 and len(veo.starts) == 2
    assert main(["status", CAMPAIGN, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["budget_usd"] == 10.0
    assert status["remaining_usd"] == pytest.approx(10.0 - status["spend_usd"])
