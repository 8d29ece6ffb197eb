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
from contextlib import contextmanager
from pathlib import Path

import pytest

from adchain_assets.defs.images import GROUPS
from adchain_assets.plan.references import CHAINS, Slot

from .dagster_ui import (
    ADD_PARTITION,
    LAUNCH_RUN,
    RUN_STATUS,
    SELECTOR,
    SENSOR,
    START_SENSOR,
    STOP_SENSOR,
    UNFINISHED_RUNS,
    free_port,
    graphql,
    runs,
)
from .helpers import PROJECT, SAMPLE_BRIEFS

pytestmark = [pytest.mark.browser, pytest.mark.server]

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


@contextmanager
def dagster_dev(root: Path, env: dict):
    """`dagster dev` on a free loopback port over ``root`` (``data/``, ``dagster_home/`` with the project's
    dagster.yaml), as `make ui` starts it; yields ``(url, log_path)`` once it serves, stops it all afterwards."""
    data_dir = root / "data"
    (data_dir / "briefs").mkdir(parents=True, exist_ok=True)
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT / ".dagster_home" / "dagster.yaml", home)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ADCHAIN_DATA_DIR": str(data_dir), **env}
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

    try:
        wait_until(server_up, 120, "dagster dev serving", interval_s=0.5)
        yield url, log_path
    finally:
        stop(process)
        log.close()


def sensor_state(url: str, name: str) -> dict:
    return graphql(url, SENSOR, {"selector": {**SELECTOR, "sensorName": name}})["sensorOrError"]


def stop_sensor_after_a_tick(url: str, name: str) -> bool:
    """Stops sensor ``name`` (as its toggle in the UI does) once it has ticked; True when it is not running."""
    found = sensor_state(url, name)
    if found["__typename"] != "Sensor" or found["sensorState"]["status"] != "RUNNING":
        return True  # no sensor, or not running: nothing to stop
    ticks = found["sensorState"]["ticks"]
    if not ticks or ticks[0]["status"] == "STARTED":
        return False
    stopped = graphql(url, STOP_SENSOR, {"id": found["id"]})["stopSensor"]
    assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped
    # A tick already under way when the toggle flips still finishes (and may request runs): wait it out.
    wait_until(lambda: sensor_state(url, name)["sensorState"]["ticks"][:1] != [{"status": "STARTED"}], 120,
               f"{name}'s last tick finishing")
    time.sleep(2)
    return True


def start_sensor(url: str, name: str) -> None:
    """Switches sensor ``name`` on, as its toggle in the UI does."""
    started = graphql(url, START_SENSOR, {"selector": {**SELECTOR, "sensorName": name}})["startSensor"]
    assert started.get("sensorState", {}).get("status") == "RUNNING", started


def unfinished_runs(url: str) -> list[dict]:
    return graphql(url, UNFINISHED_RUNS, {"statuses": UNFINISHED_RUN_STATUSES})["runsOrError"]["results"]


def run_finished(url: str, run_id: str):
    status = graphql(url, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
    return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None


@pytest.fixture(scope="module")
def ui(browser_context, tmp_path_factory):
    """`dagster dev` on loopback, CAMPAIGN's images materialized by one run launched as the UI launches it.

    The data folder's briefs/ starts empty and the sensor (on by default) is switched off, as its toggle in the UI
    does, once it has ticked; only then is CAMPAIGN's brief dropped in. So the one run is the test's own, of
    exactly the nine images (with whatever asset checks they carry), and nothing changes while the browser
    looks. What the sensor does is test_sensor's, test_follow_up's and the follow-up tests below' business.
    """
    root = tmp_path_factory.mktemp("ui")
    data_dir = root / "data"
    env = {
        "ADCHAIN_IMAGE_BACKEND": "preview",
        "ADCHAIN_MAX_SCENES": str(SCENES),  # as many slots as the campaign has scenes: a graph that fits
    }
    with dagster_dev(root, env) as (url, log_path):
        wait_until(lambda: stop_sensor_after_a_tick(url, "brief_sensor"), 120, "brief_sensor's first tick")
        wait_until(lambda: not unfinished_runs(url), RUN_TIMEOUT_S, "runs started before the sensors were stopped finishing")
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
        status = wait_until(lambda: run_finished(url, run_id), RUN_TIMEOUT_S, f"run {run_id}")
        assert status == "SUCCESS", f"run {run_id}: {status}\n{log_path.read_text()[-5000:]}"
        wait_until(lambda: not unfinished_runs(url), RUN_TIMEOUT_S, "every run finishing")
        ARTIFACTS.mkdir(exist_ok=True)
        yield {"url": url, "data_dir": data_dir, "run_id": run_id}


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


# --- The UI as the front door: a new take from an asset page, and Materialize all (README, "In the UI") ---------

FOLLOW_SLOTS = 8  # ADCHAIN_MAX_SCENES: a 3-scene brief leaves five slots per chain beyond it
FRESH = "muse-fresh"  # a second 3-scene campaign (a copy of CAMPAIGN's brief) for Materialize all
FOLLOW_TIMEOUT_S = 900  # launch to the last downstream output, on 2 busy cores
FAKE_KEY = "test-key-not-secret"
IMAGES = ("reference", "start", "end")


class Follow:
    """A running `dagster dev` with its sensor on (the default), images from the local Gemini server."""

    def __init__(self, url, data_dir, log_path, gemini):
        from adchain_assets.defs.resources import CampaignBriefs, ImageModel, Storage, VideoModel
        from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL

        self.url, self.data_dir, self.log_path, self.gemini = url, data_dir, log_path, gemini
        self.briefs = CampaignBriefs(data_dir=str(data_dir), max_scenes=FOLLOW_SLOTS)
        self.storage = Storage(url=str(data_dir))
        self.files = self.storage.files
        self.models = ImageModel(backend="gemini", model=DEFAULT_IMAGE_MODEL), VideoModel()

    def plan(self, campaign):
        from adchain_assets.defs.resources import current_plan

        return current_plan(self.briefs.load(campaign), self.storage, *self.models)

    def provenance(self, campaign) -> dict:
        from adchain_assets.plan.requests import output_names

        return self.files.read_provenances(campaign, output_names(3))

    def calls(self, campaign):
        from adchain_assets.store.ledger import Ledger

        return Ledger(str(self.data_dir)).calls(campaign)

    def settled(self, campaign):
        """Nothing queued or running, and nothing the plan calls out of date: the campaign is up to date."""
        if unfinished_runs(self.url):
            return False
        return not self.plan(campaign).outdated

    def log_tail(self) -> str:
        return self.log_path.read_text()[-4000:]


@pytest.fixture(scope="module")
def follow_ui(browser_context, tmp_path_factory):
    """`dagster dev` as `make ui` starts it (brief_sensor on), ADCHAIN_MAX_SCENES=8, images
    from the local Gemini server (a new picture per call, as a real model), clips from the preview backend.
    CAMPAIGN's brief is dropped into briefs/ as a user would, and brief_sensor makes the whole campaign."""
    from .gemini_server import FakeGemini
    from .helpers import sampling_like_a_real_model

    root = tmp_path_factory.mktemp("ui-follow")
    with FakeGemini(api_key=FAKE_KEY) as gemini:
        sampling_like_a_real_model(gemini)
        env = {
            "ADCHAIN_IMAGE_BACKEND": "gemini", "GEMINI_API_KEY": FAKE_KEY, "GEMINI_BASE_URL": gemini.base_url,
            "ADCHAIN_VIDEO_BACKEND": "preview", "ADCHAIN_MAX_SCENES": str(FOLLOW_SLOTS),
        }
        with dagster_dev(root, env) as (url, log_path):
            follow = Follow(url, root / "data", log_path, gemini)
            briefs = follow.data_dir / "briefs"
            shutil.copytree(SAMPLE_BRIEFS / "refs", briefs / "refs")
            shutil.copy(SAMPLE_BRIEFS / f"{CAMPAIGN}.yaml", briefs)
            wait_until(lambda: runs(url), 120, "brief_sensor starting the new campaign's run")
            wait_until(lambda: follow.settled(CAMPAIGN), FOLLOW_TIMEOUT_S,
                       lambda: f"{CAMPAIGN} made by brief_sensor\n{follow.log_tail()}", interval_s=3)
            assert [r["status"] for r in runs(url)] == ["SUCCESS"], runs(url)
            ARTIFACTS.mkdir(exist_ok=True)
            yield follow


def search_box(page):
    """The asset selection box of Catalog and Lineage ("Search and filter assets"): a code editor, not an input."""
    placeholder = page.locator("pre.CodeMirror-placeholder", has_text="Search and filter assets")
    return page.locator(".CodeMirror").filter(has=placeholder).element_handle()


def shot(page, name: str):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def made_at(record: dict) -> float:
    from datetime import datetime

    return datetime.fromisoformat(record["created_at"]).timestamp()


def test_a_new_take_from_the_asset_page_brings_its_downstream_up_to_date(follow_ui, page, record_property):
    """docs/ui.md, "A new take of one image", click by click; then, with no further action, brief_sensor remakes
    exactly what the plan calls out of date, in one run, and nothing else."""
    from playwright.sync_api import expect

    url = follow_ui.url
    before = follow_ui.provenance(CAMPAIGN)
    runs_before = {r["runId"] for r in runs(url)}
    calls_before, requests_before = len(follow_ui.calls(CAMPAIGN)), len(follow_ui.gemini.requests)

    # Catalog -> the search box: key:"reference/scene_2" -> the asset
    page.goto(url)
    page.get_by_role("link", name="Catalog").first.click()  # the left nav
    search_box(page).click()
    page.keyboard.type('key:"reference/scene_2"')
    page.keyboard.press("Enter")
    asset_link = page.get_by_role("link").filter(has_text=re.compile(r"^reference / scene_2"))
    expect(asset_link).to_have_count(1)
    shot(page, "ui-new-take-1-catalog")
    asset_link.click()
    expect(page.get_by_role("button", name="Materialize…")).to_be_visible()
    shot(page, "ui-new-take-2-asset-page")
    # the arrow beside "Materialize…" -> "Open launchpad"
    page.locator("button:right-of(:text('Materialize…'))").first.click()
    page.get_by_role("menuitem", name="Open launchpad").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_placeholder("Partition").click()
    page.get_by_role("menuitem", name=CAMPAIGN, exact=True).click()
    # The launchpad scaffolds the image's config; the line's help (ImageRunConfig's description) shows beside it.
    dialog.locator(".CodeMirror-line", has_text="new_take: false").click()
    expect(dialog.get_by_text("Make a new take of this image")).to_be_visible()
    for _ in "false":
        page.keyboard.press("Backspace")
    page.keyboard.type("true")
    expect(dialog.locator(".CodeMirror-line", has_text="new_take: true")).to_be_visible()
    shot(page, "ui-new-take-3-launchpad")
    dialog.get_by_role("button", name="Materialize").click()
    launched_at = time.time()
    expect(dialog).to_be_hidden()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]+"))  # the UI opens the new run's page
    shot(page, "ui-new-take-4-launched")

    wait_until(lambda: [r for r in runs(url) if r["runId"] not in runs_before], 60, "the launchpad's run")
    wait_until(lambda: follow_ui.settled(CAMPAIGN), FOLLOW_TIMEOUT_S,
               lambda: f"{CAMPAIGN} up to date after the new take\n{follow_ui.log_tail()}", interval_s=2)
    after = follow_ui.provenance(CAMPAIGN)
    new_runs = [r for r in runs(url) if r["runId"] not in runs_before]
    by = {}
    for run in new_runs:
        by.setdefault(run["tags"].get("dagster/sensor_name", "ui"), []).append(run)
    assert all(r["status"] == "SUCCESS" for r in new_runs), new_runs
    assert sorted(by) == ["brief_sensor", "ui"], new_runs
    (ui_run,), (follow_run,) = by["ui"], by["brief_sensor"]
    assert ui_run["assets"] == ["reference/scene_2"]

    changed = sorted(name for name in after if after[name]["request_sha256"] != before[name]["request_sha256"])
    remade = sorted(name for name in after if after[name]["created_at"] != before[name]["created_at"]
                    or after[name]["sha256"] != before[name]["sha256"])
    # the launchpad's run made the new take; brief_sensor's run made exactly the rest of what changed, once
    assert follow_run["assets"] == sorted(set(changed) - {"reference/scene_2"})
    assert remade == changed
    assert {"reference/scene_3", "start/scene_2", "storyboard", "ad", "report"} <= set(changed)
    assert after["reference/scene_1"] == before["reference/scene_1"]
    assert after["reference/scene_2"]["take"] == before["reference/scene_2"]["take"] + 1
    new_scene_2 = after["reference/scene_2"]["sha256"]
    assert {"asset": "reference/scene_2", "sha256": new_scene_2} in after["reference/scene_3"]["references"]
    assert {"asset": "reference/scene_2", "sha256": new_scene_2} in after["storyboard"]["inputs"]
    # model calls: one per changed image request, none for anything else
    called = sorted(call.output for call in follow_ui.calls(CAMPAIGN)[calls_before:])
    changed_images = [name for name in changed if name.split("/")[0] in IMAGES]
    assert called == changed_images
    assert len(follow_ui.gemini.requests) - requests_before == len(changed_images)

    last_output = max(made_at(after[name]) for name in changed)
    numbers = {
        "launch_to_last_downstream_output_s": round(last_output - launched_at, 1),
        "launchpad_run_s": round(ui_run["endTime"] - ui_run["startTime"], 1),
        "follow_run_queued_after_launchpad_run_s": round(follow_run["creationTime"] - ui_run["endTime"], 1),
        "follow_run_s": round(follow_run["endTime"] - follow_run["startTime"], 1),
        "outputs_remade": len(changed), "image_model_calls": len(called), "changed": changed,
    }
    (ARTIFACTS / "ui-new-take.json").write_text(json.dumps(numbers, indent=2) + "\n")
    record_property("new_take", json.dumps(numbers))

    # What the user sees afterwards: scene 3 made from the new take, the storyboard remade by the sensor's run.
    query = urllib.parse.urlencode({"view": "partitions", "partition": CAMPAIGN})
    page.goto(f"{url}/assets/reference/scene_3?{query}")
    expect(metadata_row(page, "references")).to_contain_text(new_scene_2)
    shot(page, "ui-new-take-5-scene-3")
    page.goto(f"{url}/assets/storyboard?{query}")
    expect(page.get_by_text(follow_run["runId"][:8]).first).to_be_visible(timeout=60_000)
    shot(page, "ui-new-take-6-storyboard")


def test_materialize_all_on_a_fresh_partition_makes_everything_the_brief_has(follow_ui, page, record_property):
    """docs/ui.md, "Materialize all": 9 images, 3 clips, the storyboard, the ad and the report of a 3-scene brief
    with 8 slots; the slots beyond the brief make nothing; brief_sensor makes the review outputs Dagster skipped."""
    from playwright.sync_api import expect

    url = follow_ui.url
    # The new brief must be run by the user's click, not picked up by brief_sensor first: the sensor is off (its
    # toggle) while the brief is dropped in and the run launched, and on again once the run is under way.
    wait_until(lambda: stop_sensor_after_a_tick(url, "brief_sensor"), 120, "brief_sensor stopped")
    wait_until(lambda: not unfinished_runs(url), FOLLOW_TIMEOUT_S, "runs finishing")
    shutil.copy(SAMPLE_BRIEFS / f"{CAMPAIGN}.yaml", follow_ui.data_dir / "briefs" / f"{FRESH}.yaml")
    runs_before = {r["runId"] for r in runs(url)}

    page.goto(url)
    page.get_by_role("link", name="Lineage").first.click()  # the left nav
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(re.compile(r"materialize \d+ assets"))).to_be_visible()
    dialog.get_by_text("Add a partition").click()
    adding = page.get_by_role("dialog").filter(has_text="Add a partition for campaigns")
    adding.get_by_role("textbox").fill(FRESH)
    adding.get_by_role("button", name="Save").click()
    expect(adding).to_be_hidden()
    one = dialog.get_by_text("1 partition", exact=True)
    try:  # the UI sometimes selects the partition it just added, sometimes not: then pick it from the list
        expect(one).to_be_visible(timeout=8_000)
    except AssertionError:
        dialog.get_by_text("Select a partition or create one").click()
        page.get_by_role("menuitem").filter(has_text=FRESH).click()
        page.keyboard.press("Escape")
    expect(one).to_be_visible()
    launch = dialog.get_by_role("button", name="Launch 1 run")  # one partition: one run (more: "Launch backfill")
    expect(launch).to_be_enabled()
    shot(page, "ui-materialize-all-1-dialog")
    launch.click()
    launched_at = time.time()
    expect(dialog).to_be_hidden(timeout=60_000)  # it closes once the backfill is submitted
    shot(page, "ui-materialize-all-2-launched")

    wait_until(lambda: [r for r in runs(url) if r["runId"] not in runs_before], 120, "the run Materialize all starts")
    start_sensor(url, "brief_sensor")
    wait_until(lambda: follow_ui.settled(FRESH), FOLLOW_TIMEOUT_S,
               lambda: f"{FRESH} made\n{follow_ui.log_tail()}", interval_s=2)
    folder = follow_ui.data_dir / "campaigns" / FRESH
    images = sorted(str(p.relative_to(folder)) for chain in IMAGES for p in (folder / chain).glob("*.png"))
    assert images == sorted(f"{chain}/scene_{k}.png" for chain in IMAGES for k in range(1, 4))
    assert sorted(p.name for p in (folder / "clip").glob("*.mp4")) == [f"scene_{k}.mp4" for k in range(1, 4)]
    for output in ("storyboard.png", "ad.mp4", "report.csv"):
        assert (folder / output).is_file(), output
    after = follow_ui.provenance(FRESH)
    assert all(after.values()), [name for name, record in after.items() if not record]

    new_runs = [r for r in runs(url) if r["runId"] not in runs_before]
    assert all(r["status"] == "SUCCESS" for r in new_runs), new_runs
    followed = [r for r in new_runs if r["tags"].get("dagster/sensor_name") == "brief_sensor"]
    launched = [r for r in new_runs if r not in followed]
    # every image, clip and review slot, and the placement slots (frames, clips, ad, storyboard: none for this brief)
    placement_slots = 2 * FOLLOW_SLOTS + FOLLOW_SLOTS + 2
    assert len(launched) == 1 and len(launched[0]["assets"]) == 1 + 3 * FOLLOW_SLOTS + FOLLOW_SLOTS + 5 + placement_slots, (
        launched)
    # the review outputs depend on every slot; Dagster skipped them in the launched run, brief_sensor made them
    assert [r["assets"] for r in followed] == [["ad", "deliverables", "report", "storyboard", "storyboard_pdf"]], followed
    last_output = max(made_at(record) for record in after.values())
    numbers = {
        "launch_to_last_output_s": round(last_output - launched_at, 1),
        "launched_run_s": round(launched[0]["endTime"] - launched[0]["startTime"], 1),
        "follow_run_s": round(followed[0]["endTime"] - followed[0]["startTime"], 1),
        "follow_run_queued_after_launched_run_s": round(followed[0]["creationTime"] - launched[0]["endTime"], 1),
        "image_model_calls": len(follow_ui.calls(FRESH)),
    }
    (ARTIFACTS / "ui-materialize-all.json").write_text(json.dumps(numbers, indent=2) + "\n")
    record_property("materialize_all", json.dumps(numbers))
    query = urllib.parse.urlencode({"view": "partitions", "partition": FRESH})
    page.goto(f"{url}/assets/ad?{query}")
    expect(page.get_by_text(followed[0]["runId"][:8]).first).to_be_visible(timeout=60_000)  # a slow first load
    shot(page, "ui-materialize-all-3-ad")


# --- Sign-off from the UI (docs/review.md, "In the UI") ----------------------------------------------------------

LAST_TICK = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { ticks(limit: 1) { status timestamp } } }
  }
}"""
SCENE_2_TEXT = "The woman holding the serum bottle beside her cheek in a bright bathroom"


def launch_from_the_launchpad(page, url: str, asset: str, edits: dict, shot_name: str) -> None:
    """docs/review.md's clicks: Catalog -> the asset -> the arrow beside "Materialize…" -> "Open launchpad" ->
    the campaign's partition -> each config line ``field: ...`` changed to ``field: value`` -> Materialize."""
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("link", name="Catalog").first.click()
    search_box(page).click()
    page.keyboard.type(f'key:"{asset}"')
    page.keyboard.press("Enter")
    page.get_by_role("link").filter(has_text=re.compile(f"^{' / '.join(asset.split('/'))}")).click()
    expect(page.get_by_role("button", name="Materialize…")).to_be_visible()
    page.locator("button:right-of(:text('Materialize…'))").first.click()
    page.get_by_role("menuitem", name="Open launchpad").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_placeholder("Partition").click()
    page.get_by_role("menuitem", name=CAMPAIGN, exact=True).click()
    expect(dialog.locator(".CodeMirror-line", has_text="new_take: false")).to_be_visible()
    for field, value in edits.items():  # "approve: false" -> "approve: true": the line's end, delete, type
        line = dialog.locator(".CodeMirror-line", has_text=re.compile(rf"^\s*{field}: "))
        current = line.inner_text().split(": ", 1)[1]  # the editor writes '' once the config was edited
        line.click()
        page.keyboard.press("End")
        for _ in current:
            page.keyboard.press("Backspace")
        page.keyboard.type(value)
        changed = re.compile(rf"^\s*{field}: {re.escape(value)}\s*$")
        expect(dialog.locator(".CodeMirror-line", has_text=changed)).to_be_visible()
    shot(page, shot_name)
    dialog.get_by_role("button", name="Materialize").click()
    expect(dialog).to_be_hidden()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]+"))


def sensor_ticked_since(url: str, since: float) -> bool:
    found = graphql(url, LAST_TICK, {"selector": {**SELECTOR, "sensorName": "brief_sensor"}})["sensorOrError"]
    ticks = found["sensorState"]["ticks"]
    return bool(ticks) and ticks[0]["status"] != "STARTED" and float(ticks[0]["timestamp"]) > since


def test_sign_off_from_the_launchpad_holds_the_image_until_it_is_withdrawn(follow_ui, page, record_property):
    """docs/review.md, "In the UI": reference/scene_2 approved from its launchpad (a run with no model call), its
    scene text edited: brief_sensor re-makes nothing of it; unapproved from the launchpad, it is made for the new
    text and brief_sensor makes what follows."""
    from adchain_assets.store.review import ReviewStore

    url, output = follow_ui.url, "reference/scene_2"
    wait_until(lambda: follow_ui.settled(CAMPAIGN), FOLLOW_TIMEOUT_S, lambda: f"{CAMPAIGN} settled\n{follow_ui.log_tail()}")
    before = follow_ui.provenance(CAMPAIGN)
    calls_before = len(follow_ui.calls(CAMPAIGN))
    runs_before = {r["runId"] for r in runs(url)}

    launch_from_the_launchpad(page, url, output, {"approve": "true", "by": '"client"'}, "ui-approve-1-launchpad")
    approval_runs = wait_until(lambda: [r for r in runs(url) if r["runId"] not in runs_before], 60, "the approval run")
    status = wait_until(lambda: run_finished(url, approval_runs[-1]["runId"]), FOLLOW_TIMEOUT_S, "the approval run")
    assert status == "SUCCESS", follow_ui.log_tail()
    approval = ReviewStore(str(follow_ui.data_dir)).approval(CAMPAIGN, output)
    assert approval is not None and approval.by == "client" and approval.sha256 == before[output]["sha256"]
    assert len(follow_ui.calls(CAMPAIGN)) == calls_before  # approving calls no model
    wait_until(lambda: follow_ui.settled(CAMPAIGN), FOLLOW_TIMEOUT_S, "the storyboard and report marking it")

    brief = follow_ui.data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    brief.write_text(brief.read_text().replace(SCENE_2_TEXT, "The woman holding the serum bottle by a sunny window"))
    edited_at = time.time()
    wait_until(lambda: sensor_ticked_since(url, edited_at), 120, "a brief_sensor tick after the edit", interval_s=2)
    wait_until(lambda: follow_ui.settled(CAMPAIGN), FOLLOW_TIMEOUT_S, "nothing left to make")
    plan = follow_ui.plan(CAMPAIGN)
    assert (output, "approved; request changed: changed request") in plan.held
    assert follow_ui.provenance(CAMPAIGN)[output] == before[output]  # kept: same bytes, same record
    assert len(follow_ui.calls(CAMPAIGN)) == calls_before
    shot(page, "ui-approve-2-held")

    runs_before = {r["runId"] for r in runs(url)}
    launch_from_the_launchpad(page, url, output, {"unapprove": "true"}, "ui-approve-3-unapprove")
    wait_until(lambda: [r for r in runs(url) if r["runId"] not in runs_before], 60, "the unapprove run")
    wait_until(lambda: follow_ui.settled(CAMPAIGN), FOLLOW_TIMEOUT_S,
               lambda: f"{CAMPAIGN} up to date after the unapproval\n{follow_ui.log_tail()}", interval_s=2)
    after = follow_ui.provenance(CAMPAIGN)
    assert ReviewStore(str(follow_ui.data_dir)).approval(CAMPAIGN, output) is None
    assert after[output]["sha256"] != before[output]["sha256"] and "by a sunny window" in after[output]["prompt"]
    assert after["reference/scene_3"]["references"][0] == {"asset": output, "sha256": after[output]["sha256"]}
    record_property("sign_off", json.dumps({"model_calls_to_approve": 0,
                                            "calls_after_unapprove": len(follow_ui.calls(CAMPAIGN)) - calls_before}))
