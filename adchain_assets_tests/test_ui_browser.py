"""The UI in a real browser: `dagster dev` on loopback, a 3-scene campaign materialized, and headless Chromium
(Debian's, driven by Playwright) checking what a person would look at: the asset graph shows the three chains,
and a materialized image's page shows its thumbnail, its prompt and its asset check results.

Screenshots go to ``test-artifacts/`` at the repository root (git-ignored; CI keeps them as artifacts).
The browser comes from ``scripts/install-browser.sh`` (apt: ``chromium``) and Playwright from the ``dev`` extra.
Without them the test skips locally and fails under ``CI=true``.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from adchain_assets.chains import GROUPS
from adchain_assets.references import CHAINS, Slot

from .dagster_ui import (
    ADD_PARTITION,
    LAUNCH_RUN,
    RUN_STATUS,
    SELECTOR,
    SENSOR,
    STOP_SENSOR,
    UNFINISHED_RUNS,
    free_port,
    graphql,
)
from .conftest import PROJECT, SAMPLE_BRIEFS

CAMPAIGN = "muse-portrait"  # 3 scenes, reference_mode: anchored, scene 1 is the user's photo
SCENES = 3
IMAGE = Slot("start", 2)  # the image whose page is inspected: generated, with three reference images
# Asset checks that must be listed on IMAGE's page, each with a result for its latest materialization.
# Fill in when the project's checks land, e.g. ["identity", "product"]. Whatever checks are listed (expected
# or not) must show a result either way; with none defined the test records that and moves on.
EXPECTED_CHECKS: list[str] = ["identity", "product"]
# The Checks tab's per-check labels that count as "a result for the latest materialization". The others
# are "Not evaluated", "In progress" and "Skipped". Tighten to {"Succeeded"} to require passing checks.
CHECK_RESULT_STATUSES = {"Succeeded", "Failed"}
# Materialization metadata rows the image's page must show (see chains.image_metadata).
METADATA_KEYS = ["preview", "prompt", "references", "cost_usd", "path"]

ARTIFACTS = PROJECT / "test-artifacts"
CHROMIUM = os.environ.get("ADCHAIN_CHROMIUM", "/usr/bin/chromium")
# Headless, as root, and never reaching for the network: no first-run, sync, component or QUIC traffic.
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
UI_TIMEOUT_MS = 120_000  # the UI's first load compiles a lot of JavaScript; 2 cores are slow
RUN_TIMEOUT_S = 300
UNFINISHED_RUN_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]

def wait_until(condition, timeout_s: float, what, interval_s: float = 1.0):
    """Poll ``condition`` until it returns something truthy; ``what`` (a string, or a callable giving one at
    the time of failure) says what was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what() if callable(what) else what}: not within {timeout_s:.0f} s"
        time.sleep(interval_s)


def unavailable(reason: str):
    """Skip locally; under CI the browser is part of the project's set-up, so its absence is a failure."""
    message = f"{reason} (run scripts/install-browser.sh and `pip install -e '.[dev]'`)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """Debian's Chromium under Playwright, with a fresh profile; checked first, so a skip costs nothing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1800, "height": 2000},  # tall: the expanded graph and the metadata table fit
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.set_default_navigation_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    page.on("pageerror", lambda error: print(f"UI JavaScript error: {error}"))  # shown when a test fails
    yield page
    page.close()


def stop(process: subprocess.Popen):
    """Ctrl-C as `make ui` would get it; then, if that is not enough, the whole process group."""
    for sig, grace in ((signal.SIGINT, 60), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            if sig == signal.SIGINT:
                process.send_signal(sig)
            else:
                os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # webserver, daemon, code server, run workers: nothing of ours may outlive the test
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def ui(browser_context, tmp_path_factory):
    """`dagster dev` on loopback, CAMPAIGN's images materialized by one run launched as the UI launches it.

    The data folder's briefs/ starts empty and brief_sensor (on by default) is switched off, as its toggle in
    the UI does, once it has ticked; only then is CAMPAIGN's brief dropped in. So the one run is the test's
    own, of exactly the nine images (with whatever asset checks they carry), and nothing changes while the
    browser looks. What the sensor does with a new brief is test_sensor's business.
    """
    root = tmp_path_factory.mktemp("ui")
    data_dir = root / "data"
    (data_dir / "briefs").mkdir(parents=True)
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / ".dagster_home" / "dagster.yaml", home)
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ADCHAIN_DATA_DIR": str(data_dir),
        "ADCHAIN_IMAGE_BACKEND": "preview",
        "ADCHAIN_MAX_SCENES": str(SCENES),  # as many slots as the campaign has scenes: a graph that fits
    }
    log_path = root / "webserver.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(PROJECT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def server_up():
        assert process.poll() is None, log_path.read_text()
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2)
            return True
        except OSError:
            return False

    def sensor_ticked_and_stopped():
        found = graphql(url, SENSOR, {"selector": {**SELECTOR, "sensorName": "brief_sensor"}})["sensorOrError"]
        if found["__typename"] != "Sensor" or found["sensorState"]["status"] != "RUNNING":
            return True  # no sensor, or not running: nothing to stop
        ticks = found["sensorState"]["ticks"]
        if not ticks or ticks[0]["status"] == "STARTED":
            return False
        stopped = graphql(url, STOP_SENSOR, {"id": found["id"]})["stopSensor"]
        assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped
        return True

    def no_unfinished_runs():
        runs = graphql(url, UNFINISHED_RUNS, {"statuses": UNFINISHED_RUN_STATUSES})["runsOrError"]["results"]
        return not runs

    def run_finished(run_id):
        status = graphql(url, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    try:
        wait_until(server_up, 120, "dagster dev serving", interval_s=0.5)
        wait_until(sensor_ticked_and_stopped, 120, "brief_sensor's first tick")
        wait_until(no_unfinished_runs, RUN_TIMEOUT_S, "runs started before the sensor was stopped finishing")
        shutil.copy(SAMPLE_BRIEFS / f"{CAMPAIGN}.yaml", data_dir / "briefs")
        shutil.copytree(SAMPLE_BRIEFS / "refs", data_dir / "briefs" / "refs")
        added = graphql(url, ADD_PARTITION, {"selector": SELECTOR, "name": "campaigns", "key": CAMPAIGN})
        assert added["addDynamicPartition"]["__typename"] in (
            "AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), added
        launched = graphql(url, LAUNCH_RUN, {"params": {
            "selector": {**SELECTOR, "jobName": "campaign", "assetSelection": [
                {"path": Slot(chain, k).key_path} for k in range(1, SCENES + 1) for chain in CHAINS
            ]},  # no assetCheckSelection: every check of the selected images runs, as in the UI
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": CAMPAIGN}]},
        }})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        status = wait_until(lambda: run_finished(run_id), RUN_TIMEOUT_S, f"run {run_id}")
        assert status == "SUCCESS", f"run {run_id}: {status}\n{log_path.read_text()[-5000:]}"
        wait_until(no_unfinished_runs, RUN_TIMEOUT_S, "every run finishing")
        ARTIFACTS.mkdir(exist_ok=True)
        yield {"url": url, "data_dir": data_dir, "run_id": run_id}
    finally:
        stop(process)
        log.close()


def graph_boxes(page) -> list[dict]:
    """Every node the lineage graph has drawn: its box in graph coordinates, its text and, for a zoomed-out
    asset node, its health colour (``--minimal-bg``: light while loading, then green, yellow or red)."""
    return page.locator("svg foreignObject").evaluate_all(
        """nodes => nodes.map(n => {
            const box = n.querySelector('[style*="--minimal-bg"]');
            return {
                x: +n.getAttribute('x'), y: +n.getAttribute('y'),
                w: +n.getAttribute('width'), h: +n.getAttribute('height'),
                text: (n.textContent || '').trim(),
                health: box ? box.style.getPropertyValue('--minimal-bg') : null,
            };
        })"""
    )


def chains_in_graph(boxes: list[dict]) -> dict[str, dict[str, str]]:
    """group name -> {asset name (``scene_k``) drawn inside that group's expanded box: its health colour}."""
    groups = {b["text"]: b for b in boxes if b["text"] in GROUPS.values()}
    found = {name: {} for name in groups}
    for node in boxes:
        match = re.match(r"^(scene_\d+)", node["text"])
        if not match:
            continue
        cx, cy = node["x"] + node["w"] / 2, node["y"] + node["h"] / 2
        for name, g in groups.items():
            if g["x"] <= cx <= g["x"] + g["w"] and g["y"] <= cy <= g["y"] + g["h"]:
                found[name][match.group(1)] = node["health"] or ""
    return found


def metadata_row(page, key: str):
    """The row of the metadata table whose first cell is ``key``."""
    return page.locator("tr").filter(has=page.locator("td").first.filter(has_text=re.compile(f"^{key}$"))).first


def test_asset_graph_shows_the_three_chains(ui, page):
    from playwright.sync_api import expect

    expanded = ",".join(f"global@global:{group}" for group in GROUPS.values())
    page.goto(f"{ui['url']}/asset-groups?{urllib.parse.urlencode({'expanded': expanded})}")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in GROUPS.values():  # each chain's group, drawn expanded
        expect(page.locator("svg foreignObject").filter(has_text=re.compile(f"^{group}$"))).to_be_visible()
    # Zoom to fit, as double-clicking the graph's background does, so every node is drawn and in the shot.
    page.locator("svg:has(foreignObject)").first.locator("xpath=..").dispatch_event("dblclick")
    wanted = {group: {f"scene_{k}" for k in range(1, SCENES + 1)} for group in GROUPS.values()}
    last = {}

    def drawn_and_loaded():
        last.update(chains_in_graph(graph_boxes(page)))
        drawn = {group: set(nodes) for group, nodes in last.items()} == wanted
        loading = any("background-light" in health for nodes in last.values() for health in nodes.values())
        return drawn and not loading

    try:
        wait_until(drawn_and_loaded, 60, lambda: f"the three chains drawn, with their status, in the asset graph "
                   f"(drawn: {last})", interval_s=0.5)
    finally:
        page.screenshot(path=str(ARTIFACTS / "ui-asset-graph.png"), full_page=True)
    # Every image was materialized by a successful run: none may show as degraded (red).
    degraded = {f"{group}: {name}" for group, nodes in last.items() for name, health in nodes.items() if "red" in health}
    assert not degraded, f"degraded in the asset graph: {sorted(degraded)}"


def test_image_page_shows_thumbnail_prompt_and_check_results(ui, page, record_property):
    from playwright.sync_api import expect

    provenance = json.loads((ui["data_dir"] / "campaigns" / CAMPAIGN / IMAGE.chain / f"scene_{IMAGE.scene}.json").read_text())
    query = urllib.parse.urlencode({"view": "partitions", "partition": CAMPAIGN})
    page.goto(f"{ui['url']}/assets/{'/'.join(IMAGE.key_path)}?{query}")
    expect(page.get_by_role("tab", name="Partitions")).to_be_visible()
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    for key in METADATA_KEYS:
        expect(metadata_row(page, key)).to_be_visible()
    # The full prompt the model was sent, as the provenance file records it (the table collapses whitespace).
    prompt_value = metadata_row(page, "prompt").locator("td").nth(1)
    assert " ".join(prompt_value.inner_text().split()) == " ".join(provenance["prompt"].split())
    for reference in provenance["references"]:
        expect(metadata_row(page, "references")).to_contain_text(reference["asset"])
        expect(metadata_row(page, "references")).to_contain_text(reference["sha256"])

    # The thumbnail: the "preview" markdown opens in a dialog, rendered with the data: URI image.
    preview_row = metadata_row(page, "preview")
    preview_row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    thumbnail = dialog.locator('img[src^="data:image/jpeg;base64,"]')
    expect(thumbnail).to_be_visible()
    expect(thumbnail).to_have_attribute("alt", IMAGE.key)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
    width, height = thumbnail.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert 0 < width <= 192 and 0 < height <= 192, (width, height)
    page.screenshot(path=str(ARTIFACTS / "ui-asset-page.png"), full_page=True)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    # Asset checks: every check listed has a result for the latest materialization; EXPECTED_CHECKS listed.
    page.get_by_role("tab", name="Checks").click()
    none_defined = page.get_by_text("No checks defined for this asset")
    heading = page.get_by_text(re.compile(r"^Checks \(\d+\)$"))
    if EXPECTED_CHECKS:  # don't mistake a not-yet-loaded list for an empty one
        expect(heading).to_be_visible()
    expect(none_defined.or_(heading).first).to_be_visible()
    if none_defined.is_visible():
        checks = {}
    else:
        expect(page.get_by_text(re.compile(r"^(Succeeded|Failed|Not evaluated|In progress|Skipped)$", re.I)).first).to_be_visible()
        count = int(re.search(r"\d+", heading.inner_text()).group())
        # Each entry of the list: the check's name (a title attribute) followed by its status label.
        checks = dict(page.locator("div[title] + span").evaluate_all(
            "spans => spans.map(s => [s.previousElementSibling.getAttribute('title'), s.textContent.trim()])"
        ))
        assert len(checks) == count, f"the Checks tab says {count} checks, the list shows {checks}"
    page.screenshot(path=str(ARTIFACTS / "ui-asset-checks.png"), full_page=True)
    (ARTIFACTS / "ui-asset-checks.json").write_text(json.dumps({"asset": IMAGE.key, "checks": checks}, indent=2) + "\n")
    record_property("asset_checks", json.dumps(checks) if checks else "none defined")
    if not checks:
        print(f"{IMAGE.key}: no asset checks defined yet")
    assert set(EXPECTED_CHECKS) <= set(checks), f"expected checks {EXPECTED_CHECKS}, listed {sorted(checks)}"
    without_result = {name: status for name, status in checks.items()
                      if status.lower() not in {s.lower() for s in CHECK_RESULT_STATUSES}}
    assert not without_result, f"checks without a result for the latest materialization: {without_result}"
