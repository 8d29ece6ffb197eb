"""The UI's way in: `dagster dev` (webserver and daemon, as `make ui` runs it) on loopback, a partition added
and materialized over GraphQL as the UI does it."""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from adchain_assets.plan.references import CHAINS, Slot

from .dagster_ui import ADD_PARTITION, LAUNCH_RUN, RUN_STATUS, free_port, graphql
from .helpers import PROJECT, run_selection

pytestmark = [pytest.mark.server]

@pytest.fixture
def webserver(tmp_path, data_dir):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / ".dagster_home" / "dagster.yaml", home)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ADCHAIN_DATA_DIR": str(data_dir), "ADCHAIN_IMAGE_BACKEND": "preview"}
    log = open(tmp_path / "webserver.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(PROJECT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "webserver.log").read_text()
                assert time.monotonic() < deadline, "webserver did not start in 90 s"
                time.sleep(0.5)
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # dagster dev shuts its webserver and daemon down on Ctrl-C
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_partition_materialization_launched_through_graphql(webserver, data_dir):
    selector = {"repositoryLocationName": "adchain", "repositoryName": "__repository__"}
    added = graphql(webserver, ADD_PARTITION, {"selector": selector, "name": "campaigns", "key": "muse-portrait"})
    # brief_sensor runs by default under `dagster dev` and may have added the new brief's partition first
    assert added["addDynamicPartition"]["__typename"] in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), added
    launched = graphql(webserver, LAUNCH_RUN, {"params": {
        "selector": {**selector, "jobName": "campaign", "assetSelection": [
            {"path": key.path} for key in run_selection(Slot(c, k) for k in (1, 2, 3) for c in CHAINS)
        ]},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "muse-portrait"}]},
    }})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 180
    status = None
    while time.monotonic() < deadline:
        status = graphql(webserver, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS"
    pngs = sorted((data_dir / "campaigns" / "muse-portrait").rglob("*.png"))
    assert len(pngs) == 10 and all(p.with_suffix(".json").exists() for p in pngs if p.name != "storyboard.png")
