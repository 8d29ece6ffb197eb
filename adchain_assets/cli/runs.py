"""How the command line runs a campaign: one run of the campaign job on its partition, in the Dagster instance
of ``DAGSTER_HOME`` (so the UI shows it), executed here or submitted to a daemon's queue.

With ``ADCHAIN_WEBSERVER_URL`` set (a production instance with a daemon, as ``make stack`` starts), runs are
submitted to the daemon's queue and followed (:mod:`adchain_assets.cli.run_queue`); otherwise they are executed
by this process, alone on their campaign (:func:`campaign_exclusive`).
"""

from __future__ import annotations

import fcntl
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping, Optional, Sequence

import dagster as dg

from adchain_assets.cli import EXIT_FAILED, EXIT_OK
from adchain_assets.defs.jobs import CAMPAIGN_JOB
from adchain_assets.defs.partitions import campaigns
from adchain_assets.settings import Settings
from adchain_assets.store.files import CampaignFiles
from adchain_assets.store.ledger import Ledger
from adchain_assets.store.snapshots import BRIEF_TAG

# The CLI prints its own summary; the full event log is in the instance, where the UI shows it.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CLI_TAG = "adchain/launched_by"
WAIT_FOR_OTHER_RUNS_S = 3600


def create_instance_alone(home: Path) -> None:
    """Open the instance once under a lock in ``home``, so that commands started together on a fresh home do not
    race to create (and migrate) its storage: sqlite's schema creation is not safe against a concurrent creator,
    and the losers left two alembic heads behind. Later opens find the schema made and take the lock briefly."""
    with open(home / ".adchain-instance.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with dg.DagsterInstance.get():
            pass


def campaign_job() -> dg.JobDefinition:
    """The campaign job, importable by path so that its steps can run in other processes."""
    from adchain_assets.definitions import defs

    return defs.resolve_job_def(CAMPAIGN_JOB)


def register(instance: dg.DagsterInstance, campaign: str) -> None:
    """Add ``campaign`` to the ``campaigns`` partitions if it is not there yet."""
    if not instance.has_dynamic_partition(campaigns.name, campaign):
        instance.add_dynamic_partitions(campaigns.name, [campaign])


def failure_line(step_key: str, error) -> str:
    """``<asset>: <root cause>`` for a failed step; a ``Failure`` raised by the asset already names it."""
    while error is not None and error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    cause = error.message.strip() if error else "unknown error"
    if error is not None and error.cls_name == "Failure":
        cause = cause.split(": ", 1)[-1]  # drop the exception's dotted class name
    asset = step_key.replace("__", "/")
    return cause if cause.startswith(asset) else f"{asset}: {cause}"


@contextmanager
def campaign_exclusive(instance: dg.DagsterInstance, campaign: str):
    """Run alone on ``campaign`` on the embedded instance (no daemon, no run queue: see :func:`execute_campaign`):
    the UI's and the sensor's runs are limited by the run queue's tag limit; the CLI executes directly, so it
    waits for them, and a lock file keeps two CLI runs apart on this machine.

    The lock dies with its process, so a CLI run still marked as started while nobody holds the lock was
    killed: it is marked failed rather than waited for, and its model-pool slots are given back. With no daemon
    there is no run monitoring to do that, and Dagster has no public call for it: these are the only two calls
    of the instance's internals left, and only on this embedded path; with a daemon, runs go through the queue.
    """
    lock_path = Path(instance.root_directory) / "adchain-locks" / f"{campaign}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{campaign}: waiting for another adchain run of this campaign to finish", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        in_progress = dg.RunsFilter(
            tags={"dagster/partition": campaign},
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                      dg.DagsterRunStatus.STARTED],
        )
        for run in instance.get_runs(in_progress):
            if run.tags.get(CLI_TAG) == "cli":
                instance.report_run_failed(run, "its adchain process was killed before the run finished")
                if instance.event_log_storage.supports_global_concurrency_limits:
                    # a killed run keeps its model-pool slots until they are freed explicitly
                    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        deadline = time.monotonic() + WAIT_FOR_OTHER_RUNS_S
        while others := instance.get_runs(in_progress, limit=1):
            if time.monotonic() > deadline:
                raise SystemExit(f"{campaign}: run {others[0].run_id} is still in progress; try again later")
            print(f"{campaign}: waiting for run {others[0].run_id} to finish", file=sys.stderr)
            time.sleep(5)
        yield


def execute_campaign(settings: Settings, campaign: str, selection: Sequence[dg.AssetKey], *, brief_sha256: str,
                     run_config: Optional[dict] = None, out=sys.stdout, tags: Optional[Mapping[str, str]] = None) -> int:
    """One run of the campaign job on ``campaign``'s partition: the ``selection`` of asset keys, with the brief
    snapshot ``brief_sha256`` pinned and ``tags`` (its estimate) added. Prints what it made and spent; returns an
    exit code."""
    instance = dg.DagsterInstance.get()
    register(instance, campaign)
    ledger = Ledger(settings.storage_url)
    before = ledger.spend(campaign)
    started = time.perf_counter()
    if settings.webserver_url:
        # A production instance: the run goes through the daemon's queue (its tag limit keeps one run per
        # campaign) and runs on the instance's workers; this process only follows it.
        from adchain_assets.cli import run_queue

        try:
            run_id = run_queue.submit(
                settings.webserver_url, CAMPAIGN_JOB, campaign, list(selection),
                tags={**(tags or {}), CLI_TAG: "cli", BRIEF_TAG: brief_sha256}, run_config=run_config or {},
            )
            outcome = run_queue.follow(instance, run_id, label=campaign)
        except run_queue.QueueUnavailable as error:
            print(f"{campaign}: {error}", file=sys.stderr)
            return EXIT_FAILED
        if outcome.status != dg.DagsterRunStatus.SUCCESS:
            for line in run_queue.failure_lines(instance, outcome.run_ids[-1], failure_line):
                print(f"{campaign}: {line}", file=sys.stderr)
            return EXIT_FAILED
    else:
        with campaign_exclusive(instance, campaign):
            result = dg.execute_job(
                dg.reconstructable(campaign_job),
                instance=instance,
                tags={**(tags or {}), "dagster/partition": campaign, CLI_TAG: "cli", BRIEF_TAG: brief_sha256},
                run_config={**QUIET, **(run_config or {})},
                asset_selection=list(selection),
            )
        if not result.success:
            failures = [failure_line(event.step_key, event.step_failure_data.error)
                        for event in result.all_events if event.is_step_failure]
            for line in failures or [f"run {result.run_id} failed"]:
                print(f"{campaign}: {line}", file=sys.stderr)
            return EXIT_FAILED
    after = ledger.spend(campaign)
    storyboard = CampaignFiles(settings.storage_url).output_path(campaign, "storyboard")
    print(
        f"{campaign}: {len(selection)} outputs made in {time.perf_counter() - started:.1f}s,"
        f" {after.paid_calls - before.paid_calls} paid calls, ${after.spend_usd - before.spend_usd:.4f};"
        f" storyboard: {storyboard}",
        file=out,
    )
    return EXIT_OK
