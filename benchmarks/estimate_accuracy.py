"""How close the plan's estimate comes to the bill, and how far a budget lets the ledger go, against the local
Gemini and Veo protocol servers (the same paths as adchain_assets_tests/test_costs.py, printed as figures).

Usage::

    .venv/bin/python benchmarks/estimate_accuracy.py

1. A fresh 4-scene campaign (the sample aurora-perfume, default models): the plan's estimate, the ledger's total
   after the sensor's run, the second plan's estimate, and the estimate of a `look` edit before anything runs.
2. A 2-scene campaign whose image model bills three times the catalogue's nominal image tokens, with a budget 10%
   above the plan's estimate: where the ledger stops, what is refused, and what raising the budget costs.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adchain_assets.definitions import build_definitions  # noqa: E402
from adchain_assets.defs.resources import VideoModel, current_plan  # noqa: E402
from adchain_assets.defs.sensors import plan_tick  # noqa: E402
from adchain_assets.plan.calls import BUDGET, OK  # noqa: E402
from adchain_assets.settings import Settings  # noqa: E402
from adchain_assets.store.ledger import Ledger  # noqa: E402
from adchain_assets_tests.gemini_server import FakeGemini, image_reply, image_size, make_png  # noqa: E402
from adchain_assets_tests.helpers import SAMPLE_BRIEFS, edit, execute, tick  # noqa: E402
from adchain_assets_tests.veo_server import FakeVeo  # noqa: E402

CAMPAIGN = "aurora-perfume"
KEY = "not-secret"


def definitions(data: Path, gemini: FakeGemini, veo: FakeVeo) -> dg.Definitions:
    os.environ.update({"GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": gemini.base_url})
    settings = replace(Settings.from_env(), data_dir=str(data), storage="", image_backend="gemini",
                       video_backend="veo", step_retry_delay_s=0.0, budget_usd=None)
    video = VideoModel(backend="veo", api_key=KEY, base_url=veo.base_url, poll_interval_s=0.01, max_wait_s=60,
                       initial_delay_s=0.01)
    return build_definitions(settings, {"video_model": video})


def plan_of(defs: dg.Definitions):
    r = defs.resources
    loaded = r["briefs"].load(CAMPAIGN)
    return current_plan(loaded, r["storage"], r["image_model"], r["video_model"], budget_usd=r["briefs"].budget_of(loaded))


def run_tick(defs, instance) -> list:
    result = tick(defs, instance)
    return [execute(defs, instance, request) for request in result.run_requests or []], result


def by_kind(estimate) -> str:
    images = sum(o.usd for n, o in estimate.outputs.items() if "/" in n and not n.startswith("clip/"))
    clips = sum(o.usd for n, o in estimate.outputs.items() if n.startswith("clip/"))
    return f"${estimate.usd:.4f} (images ${images:.4f}, clips ${clips:.4f})"


def fresh_campaign(root: Path) -> None:
    data = root / "fresh"
    shutil.copytree(SAMPLE_BRIEFS, data / "briefs")
    (data / "briefs" / "muse-portrait.yaml").unlink()
    with FakeGemini(api_key=KEY) as gemini, FakeVeo(api_key=KEY) as veo, dg.DagsterInstance.ephemeral() as instance:
        defs = definitions(data, gemini, veo)
        before = plan_of(defs).estimate
        r = defs.resources
        note = plan_tick(r["briefs"], r["storage"], r["image_model"], r["video_model"], {}).notes[-1]
        runs, result = run_tick(defs, instance)
        assert all(run.success for run in runs)
        spent = Ledger(str(data)).spend(CAMPAIGN)
        error = (before.usd - spent.spend_usd) / spent.spend_usd
        print("1. fresh 4-scene campaign (gemini-3.1-flash-image, veo-3.1-fast-generate-001, 4 s clips)")
        print(f"   plan estimate before the run:  {by_kind(before)}, {before.calls} paid calls")
        print(f"   run tag adchain/estimate_usd:  {result.run_requests[0].tags['adchain/estimate_usd']}")
        print(f"   tick log: {note[:160]}...")
        print(f"   ledger after the run:          ${spent.spend_usd:.4f} over {spent.paid_calls} paid calls")
        print(f"   estimate - bill:               {error:+.2%}")
        print(f"   plan after the run:            {len(plan_of(defs).outdated)} out of date, "
              f"estimate ${plan_of(defs).estimate.usd:.4f}")
        edit(data / "briefs" / f"{CAMPAIGN}.yaml", "35 mm film grain", "16 mm film grain")
        look = plan_of(defs)
        first = look.estimate.outputs["reference/scene_1"]
        print(f"   look edit, before any run:     {len(look.outdated)} out of date, {by_kind(look.estimate)}"
              f" ({first.basis}); vs the first bill {(look.estimate.usd - spent.spend_usd) / spent.spend_usd:+.2%}")


def budget_half_way(root: Path) -> None:
    data = root / "budget"
    shutil.copytree(SAMPLE_BRIEFS, data / "briefs")
    (data / "briefs" / "muse-portrait.yaml").unlink()
    path = data / "briefs" / f"{CAMPAIGN}.yaml"
    head, *scenes = path.read_text().split("  - subjects:")
    two = head + "  - subjects:".join([""] + scenes[:2])

    def costly(request):
        return image_reply(make_png(request.prompt_text.encode(), image_size(request.aspect_ratio)),
                           output_tokens=3 * 1120, model_version=request.model)

    with FakeGemini(api_key=KEY) as gemini, FakeVeo(api_key=KEY) as veo, dg.DagsterInstance.ephemeral() as instance:
        gemini.default_reply = costly
        defs = definitions(data, gemini, veo)
        path.write_text(two)
        estimate = plan_of(defs).estimate.usd
        budget = round(estimate * 1.1, 2)
        path.write_text(two + f"budget_usd: {budget}\n")
        runs, _ = run_tick(defs, instance)
        ledger = Ledger(str(data))
        calls = ledger.calls(CAMPAIGN)
        spent = ledger.spend(CAMPAIGN).spend_usd
        paid = [c for c in calls if c.usage]
        refused = sorted(c.output for c in calls if c.outcome == BUDGET)
        print("2. 2-scene campaign, the image model billing 3x the nominal image tokens")
        print(f"   plan estimate ${estimate:.4f}; budget_usd {budget} (launched: within it)")
        print(f"   run: {'succeeded' if runs[0].success else 'failed'}; ledger stopped at ${spent:.4f}"
              f" ({spent - budget:+.4f} over the budget; largest single call ${max(c.cost_usd for c in paid):.4f});"
              f" refused as BUDGET: {', '.join(refused)}")
        held = [name for name, reason in plan_of(defs).held if reason.endswith(BUDGET)]
        print(f"   plan under the same budget: held {', '.join(held)}")
        path.write_text(two + "budget_usd: 10\n")
        later = plan_of(defs).estimate
        runs, _ = run_tick(defs, instance)
        made = [c for c in ledger.calls(CAMPAIGN) if c.usage and c.outcome == OK]
        print(f"   budget raised to 10: plan estimate ${later.usd:.4f}; run {'succeeded' if all(r.success for r in runs) else 'failed'};"
              f" ledger ${ledger.spend(CAMPAIGN).spend_usd:.4f}; {len(made)} paid calls for"
              f" {len({c.request_sha256 for c in made})} distinct requests; plan after: {len(plan_of(defs).outdated)} out of date")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        fresh_campaign(Path(folder))
        budget_half_way(Path(folder))


if __name__ == "__main__":
    main()
