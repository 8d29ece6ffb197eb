"""The project as a newcomer runs it: nothing exported, the default relative ``./data``, the repository as the
current folder. What `make demo` made must be what `adchain plan` and `adchain status` see, and a finished
campaign's plan must be empty (nothing left for the sensor to run)."""

import csv
import io
import json
import os
import shutil

import pytest

from adchain_assets.plan.requests import output_names

from .helpers import PROJECT, SAMPLE_BRIEFS, adchain, definitions_for, execute, selected, tick

CAMPAIGN = "aurora-perfume"


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A folder laid out like a fresh clone (its sample briefs, the tracked instance config), as the current
    folder, with no ADCHAIN_*, GEMINI_* or DAGSTER_HOME in the environment."""
    root = tmp_path / "adchain"
    shutil.copytree(SAMPLE_BRIEFS, root / "data" / "briefs")
    (root / ".dagster_home").mkdir()
    shutil.copy(PROJECT / ".dagster_home" / "dagster.yaml", root / ".dagster_home")
    for name in list(os.environ):
        if name.startswith(("ADCHAIN_", "GEMINI_")) or name == "DAGSTER_HOME":
            monkeypatch.delenv(name)
    monkeypatch.chdir(root)
    return root


def report_rows(root) -> list[dict]:
    return list(csv.DictReader(io.StringIO((root / "data/campaigns" / CAMPAIGN / "report.csv").read_text())))


def test_the_sensor_over_the_default_relative_data_folder_brings_a_campaign_to_rest(clone, instance):
    from pathlib import Path

    for other in ("muse-portrait", "lumen-dive"):  # one campaign shows it; `make demo`'s test makes all three
        (clone / "data" / "briefs" / f"{other}.yaml").unlink()
    defs = definitions_for(Path("data"))  # ADCHAIN_DATA_DIR unset: the relative default
    first = tick(defs, instance)
    for request in first.run_requests:
        assert execute(defs, instance, request).success
    assert set(selected(first)) == {CAMPAIGN}
    again = tick(defs, instance)
    assert not again.run_requests, [request.asset_selection for request in again.run_requests]  # at rest
    rows = report_rows(clone)
    assert {row["output"] for row in rows} == set(output_names(4)[:16])  # every image and clip, one row each


@pytest.mark.subprocess
def test_after_make_demo_plan_and_status_see_everything_it_made(clone):
    env = dict(os.environ)
    demo = adchain(env, "demo", cwd=clone)
    assert demo.returncode == 0, demo.stderr
    plan = adchain(env, "plan", CAMPAIGN, "--json", cwd=clone)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["outdated"] == [], plan.stdout
    status = adchain(env, "status", CAMPAIGN, "--json", cwd=clone)
    outputs = json.loads(status.stdout)["outputs"]
    assert set(outputs) == set(output_names(4))
    assert {info["state"] for info in outputs.values()} == {"made"}, outputs
    assert len(report_rows(clone)) == 16  # 12 images and 4 clips
    assert (clone / ".dagster_home" / "storage").exists()  # the instance in the current folder, as the UI's
