"""Runs through the instance's run queue: what ``adchain`` does when a production instance is running.

When ``ADCHAIN_WEBSERVER_URL`` names the webserver of an instance whose ``dagster-daemon`` is running (the
stack of deploy/, or ``dagster dev``), the CLI does not execute runs itself: it submits the campaign job for the
campaign's partition through the webserver's GraphQL API (``dagster_graphql.DagsterGraphQLClient``), so the run
waits in the daemon's queue like the sensor's and the UI's runs, under the same limits (one run per campaign by
the ``dagster/partition`` tag limit, the cap on runs in progress, the model pools), and runs wherever the
instance's executor puts its steps. It then follows the run until it ends, and follows the daemon's automatic
retry of a failed run (``run_retries`` in deploy/dagster.yaml) to its end too.

It can only submit what the webserver's code location defines (the ``campaign`` job of location ``adchain``),
and it cannot start a daemon: with no daemon heartbeat it refuses to submit, naming the reason, since a queued
run would never start.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional, Sequence
from urllib.parse import urlparse

import dagster as dg

LOCATION = "adchain"
REPOSITORY = "__repository__"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# dagster's run-retry tags: set by the daemon on a failed run it retries (or decides not to)
WILL_RETRY_TAG = "dagster/will_retry"
RETRY_RUN_TAG = "dagster/auto_retry_run_id"
DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"


class QueueUnavailable(RuntimeError):
    """The webserver cannot be reached, or no daemon would start a queued run."""


@dataclass(frozen=True)
class Outcome:
    run_ids: list[str]
    status: dg.DagsterRunStatus


def _graphql(url: str, query: str, timeout: float = 10) -> dict:
    request = urllib.request.Request(
        url.rstrip("/") + "/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.load(response)
    except (OSError, ValueError) as error:
        raise QueueUnavailable(f"ADCHAIN_WEBSERVER_URL={url}: the webserver does not answer ({error})") from error
    if body.get("errors"):
        raise QueueUnavailable(f"ADCHAIN_WEBSERVER_URL={url}: {body['errors'][0].get('message')}")
    return body["data"]


def check_daemon(url: str) -> None:
    """Raise :class:`QueueUnavailable` unless every daemon the instance requires sends heartbeats."""
    statuses = _graphql(url, DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
    down = [s["daemonType"] for s in statuses if s["required"] and not s["healthy"]]
    if down:
        raise QueueUnavailable(
            f"ADCHAIN_WEBSERVER_URL={url}: no heartbeat from dagster-daemon ({', '.join(down)}); a queued run would"
            " never start: start the daemon (make stack) or unset ADCHAIN_WEBSERVER_URL to run here"
        )


def client_for(url: str):
    from dagster_graphql import DagsterGraphQLClient

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise QueueUnavailable(f"ADCHAIN_WEBSERVER_URL={url!r}: expected http://host:port")
    return DagsterGraphQLClient(
        parsed.hostname,
        port_number=parsed.port,
        use_https=parsed.scheme == "https",
        path_prefix=parsed.path.rstrip("/"),
    )


def submit(url: str, job_name: str, campaign: str, asset_keys: Sequence[dg.AssetKey], *, tags: dict, run_config: dict) -> str:
    """Queue one run of ``job_name`` on ``campaign``'s partition; returns its run id."""
    check_daemon(url)
    return client_for(url).submit_job_execution(
        job_name,
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        run_config=run_config,
        tags={"dagster/partition": campaign, **tags},
        asset_selection=list(asset_keys),
    )


def follow(instance: dg.DagsterInstance, run_id: str, *, label: str, poll_s: float = 2.0, err=sys.stderr) -> Outcome:
    """Wait for ``run_id`` to end; if the daemon retries it, wait for the retry too. Prints each change."""
    run_ids = [run_id]
    last: Optional[dg.DagsterRunStatus] = None
    while True:
        run = instance.get_run_by_id(run_ids[-1])
        if run is None:
            raise QueueUnavailable(f"run {run_ids[-1]} is not in the instance this shell's DAGSTER_HOME names")
        if run.status != last:
            print(f"{label}: run {run.run_id} {run.status.value.lower()}", file=err)
            last = run.status
        if run.status in FINISHED:
            if run.status == dg.DagsterRunStatus.FAILURE:
                retry = _retry_of(instance, run.run_id, poll_s)
                if retry:
                    print(f"{label}: run {run.run_id} failed; the daemon retries it from failure as {retry}", file=err)
                    run_ids.append(retry)
                    last = None
                    continue
            return Outcome(run_ids, run.status)
        time.sleep(poll_s)


def _retry_of(instance: dg.DagsterInstance, run_id: str, poll_s: float, wait_s: float = 120) -> Optional[str]:
    """The id of the daemon's retry of a failed run, once it has decided; None when it will not retry."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        tags = instance.get_run_by_id(run_id).tags
        if tags.get(RETRY_RUN_TAG):
            return tags[RETRY_RUN_TAG]
        if tags.get(WILL_RETRY_TAG) == "false":
            return None
        if WILL_RETRY_TAG not in tags and not instance.run_retries_enabled:
            return None
        time.sleep(poll_s)
    return None


def failure_lines(instance: dg.DagsterInstance, run_id: str, failure_line) -> list[str]:
    """One line per failed step (``failure_line(step_key, error)``), else the run's own failure message."""
    steps = [
        failure_line(record.dagster_event.step_key, record.dagster_event.step_failure_data.error)
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]
    if steps:
        return steps
    runs = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return [record.dagster_event.message or f"run {run_id} failed" for record in runs] or [f"run {run_id} failed"]
