"""The production stack under load and under faults, with the real services (see conftest.py).

Every number the tests measure is printed and written to deploy/.stack/measurements.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from adchain_assets.settings import Settings

from .conftest import reset, unique_prefix, wait_until, write_brief

pytestmark = [pytest.mark.stack]

CAMPAIGNS_AT_ONCE = 8
SCENES = 2
IMAGES_PER_CAMPAIGN = 3 * SCENES
MEASUREMENTS: dict = {}


def record(name: str, values: dict) -> None:
    MEASUREMENTS[name] = values
    print(f"\n{name}: {json.dumps(values, indent=1)}")
    path = Path(os.environ["STACK_DIR"]) / "measurements.json"
    path.write_text(json.dumps(MEASUREMENTS, indent=1))


def instance_limits(instance) -> tuple[int, int]:
    """(max runs in progress, image_model pool limit) as the instance is configured."""
    settings = instance.get_concurrency_config()
    return settings.run_queue_config.max_concurrent_runs, instance.event_log_storage.get_concurrency_info("image_model").slot_count


def campaign_runs(instance, prefix: str) -> list[dg.RunRecord]:
    return [
        record
        for record in instance.get_run_records(dg.RunsFilter(job_name="campaign"))
        if record.dagster_run.tags.get("dagster/partition", "").startswith(prefix)
    ]


def max_overlap(intervals) -> int:
    """The most intervals (start, end) open at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def intervals(records) -> list[tuple[float, float]]:
    return [(r.start_time, r.end_time or time.time()) for r in records if r.start_time]


def campaigns_done(instance, campaigns) -> bool:
    """Every campaign has a successful run and none is queued or in progress."""
    latest = {}
    for record in instance.get_run_records(dg.RunsFilter(job_name="campaign")):
        campaign = record.dagster_run.tags.get("dagster/partition")
        if campaign in campaigns:
            latest.setdefault(campaign, []).append(record.dagster_run.status)
    return set(latest) == set(campaigns) and all(
        dg.DagsterRunStatus.SUCCESS in statuses
        and not any(s in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED) for s in statuses)
        for statuses in latest.values()
    )


def failed_runs_report(instance, prefix: str) -> str:
    lines = []
    for r in campaign_runs(instance, prefix):
        if r.dagster_run.status == dg.DagsterRunStatus.FAILURE:
            for event in instance.all_logs(r.dagster_run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}):
                lines.append(f"{r.dagster_run.tags.get('dagster/partition')} {r.dagster_run.run_id[:8]}: {event.message[:300]}")
    return "\n".join(lines)


def stored_images(campaign: str) -> list[str]:
    """The image PNGs of ``campaign`` where the stack keeps outputs (the storage URL, else the data folder)."""
    from upath import UPath

    settings = Settings.from_env()
    base = UPath(getattr(settings, "storage_url", None) or settings.data_dir)
    root = base / "campaigns" / campaign
    return sorted(f"{chain}/{p.name}" for chain in ("reference", "start", "end") if (root / chain).exists() for p in (root / chain).iterdir() if p.name.endswith(".png"))


@pytest.fixture(scope="module")
def eight_campaigns(stack, instance, fake_gemini_for_stack):
    """Eight briefs dropped into the watched folder at once, and everything that follows, until every campaign
    has succeeded."""
    fake = reset(fake_gemini_for_stack)
    prefix = unique_prefix()
    campaigns = [f"{prefix}-c{i}" for i in range(1, CAMPAIGNS_AT_ONCE + 1)]
    briefs_dir = Path(os.environ["ADCHAIN_DATA_DIR"]) / "briefs"
    started = time.monotonic()
    for campaign in campaigns:
        write_brief(briefs_dir, campaign, SCENES)
    wait_until("the eight campaigns to succeed", lambda: campaigns_done(instance, campaigns), timeout_s=1500, poll_s=2)
    wall_s = time.monotonic() - started
    return {"prefix": prefix, "campaigns": campaigns, "wall_s": wall_s, "fake": fake, "records": campaign_runs(instance, prefix)}


def test_eight_briefs_at_once_make_eight_partitions_and_eight_queued_runs_within_every_limit(eight_campaigns, instance):
    campaigns, records, fake = eight_campaigns["campaigns"], eight_campaigns["records"], eight_campaigns["fake"]
    max_runs, pool_limit = instance_limits(instance)

    # the sensor, in the daemon, registered the partitions and requested one run each; all went through the queue
    assert set(campaigns) <= set(instance.get_dynamic_partitions("campaigns"))
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in records if r.dagster_run.tags.get("dagster/sensor_name") == "brief_sensor") == sorted(campaigns)
    enqueued = [r for r in records if instance.all_logs(r.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)]
    assert len(enqueued) == len(records)
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records), failed_runs_report(instance, eight_campaigns["prefix"])

    runs_at_once = max_overlap(intervals(records))
    per_campaign = {c: max_overlap(intervals([r for r in records if r.dagster_run.tags["dagster/partition"] == c])) for c in campaigns}
    images = {c: stored_images(c) for c in campaigns}
    made = sum(len(v) for v in images.values())
    paid = sum(1 for r in fake.requests if r.reply_status == 200)
    record("eight_campaigns", {
        "runs_queued": len(enqueued), "runs_completed": sum(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records),
        "max_runs_at_once": runs_at_once, "run_cap": max_runs,
        "max_model_calls_at_once": fake.max_in_flight, "image_pool_limit": pool_limit,
        "calls_paid": paid, "images_made": made, "wall_s": round(eight_campaigns["wall_s"], 1),
    })
    assert max(per_campaign.values()) == 1, f"two runs of one campaign at once: {per_campaign}"
    assert 1 < runs_at_once <= max_runs
    assert 1 <= fake.max_in_flight <= pool_limit
    assert all(len(v) == IMAGES_PER_CAMPAIGN for v in images.values()), images
    assert paid == made == CAMPAIGNS_AT_ONCE * IMAGES_PER_CAMPAIGN


def test_the_eight_campaigns_outputs_are_in_the_bucket_and_none_in_the_local_data_folder(eight_campaigns):
    settings = Settings.from_env()
    if not hasattr(settings, "storage_url"):
        pytest.skip("this branch has no ADCHAIN_STORAGE_URL yet (the storage work lands on main separately)")
    import s3fs

    bucket_root = os.environ["ADCHAIN_STORAGE_URL"].removeprefix("s3://").rstrip("/")
    s3 = s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    for campaign in eight_campaigns["campaigns"]:
        listed = {path.rsplit(f"/campaigns/{campaign}/", 1)[-1] for path in s3.find(f"{bucket_root}/campaigns/{campaign}")}
        for k in range(1, SCENES + 1):
            for chain in ("reference", "start", "end"):
                assert {f"{chain}/scene_{k}.png", f"{chain}/scene_{k}.json"} <= listed, (campaign, sorted(listed))
        assert "storyboard.png" in listed and "ad.mp4" in listed, (campaign, sorted(listed))
        assert not (Path(settings.data_dir) / "campaigns" / campaign).exists(), f"{campaign}: outputs under the local data folder"


def _active_step(instance, run_id: str):
    """(worker hostname, pool process pid, step key) of a step of ``run_id`` that a Celery worker is executing."""
    from celery import Celery

    app = Celery(broker=os.environ["ADCHAIN_CELERY_BROKER"], backend=os.environ["ADCHAIN_CELERY_BACKEND"])
    for worker, tasks in (app.control.inspect(timeout=1.0).active() or {}).items():
        for task in tasks:
            if run_id in json.dumps(task.get("args")) + json.dumps(task.get("kwargs")):
                return worker, task["worker_pid"], task
    return None


def test_a_celery_worker_process_killed_mid_step_its_step_runs_again_and_no_image_is_paid_twice(stack, instance, fake_gemini_for_stack):
    """The hard case: the process is killed while another step of the run is in flight. A lost task reported as
    a failure makes dagster-celery's run worker stop submitting steps and wait for ever on the rest (the run
    stayed STARTED); with acks_late and reject_on_worker_lost the task is queued again and the run completes."""
    fake = reset(fake_gemini_for_stack, latency_s=4.0)  # a model call long enough to die in
    campaign = f"{unique_prefix()}-kill"
    write_brief(Path(os.environ["ADCHAIN_DATA_DIR"]) / "briefs", campaign, SCENES)
    first = wait_until("the run to start", lambda: next((r for r in campaign_runs(instance, campaign) if r.dagster_run.status == dg.DagsterRunStatus.STARTED), None), timeout_s=300)
    run_id = first.dagster_run.run_id
    # wait until two steps of the run are in model calls (scene 1's start frame and scene 2's reference), then
    # kill the worker process executing one of them
    # (a machine too busy to overlap two calls by the run's fourth request still kills mid-call)
    wait_until("two model calls of the run at once", lambda: fake.in_flight >= 2 or (fake.in_flight >= 1 and len(fake.requests) >= 4),
               timeout_s=300, poll_s=0.1)
    found = wait_until("the worker executing the step", lambda: _active_step(instance, run_id), timeout_s=60, poll_s=0.2)
    worker, pid, _ = found
    in_flight_at_kill = fake.in_flight
    requests_before_kill = len(fake.requests)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def run_over():
        status = instance.get_run_by_id(run_id).status
        return status if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED) else None

    status = wait_until("the run to end", run_over, timeout_s=600, poll_s=1)
    recovered_s = time.monotonic() - killed_at
    starts = [e.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)]
    run_twice = sorted({key for key in starts if starts.count(key) > 1})
    images = stored_images(campaign)
    answered = [r for r in fake.requests if r.reply_status == 200]
    record("worker_killed", {
        "killed": f"{worker} pool process {pid}", "model_calls_in_flight_at_kill": in_flight_at_kill,
        "requests_before_kill": requests_before_kill, "run_status": status.value, "steps_run_twice": run_twice,
        "seconds_from_kill_to_run_success": round(recovered_s, 1),
        "requests": len(fake.requests), "calls_answered": len(answered),
        "calls_delivered": sum(r.delivered for r in fake.requests), "images_made": len(images),
    })
    assert status == dg.DagsterRunStatus.SUCCESS, failed_runs_report(instance, campaign)
    # the killed step, and only it, runs again (none when the kill landed between two tasks: rare, recorded above)
    assert len(run_twice) <= 1, starts
    assert len(images) == IMAGES_PER_CAMPAIGN
    # only the call that died with the worker was asked again: every other image was requested exactly once
    assert len(fake.requests) <= IMAGES_PER_CAMPAIGN + 1
    prompts = [r.prompt_text for r in fake.requests]
    assert sum(prompts.count(p) - 1 for p in set(prompts)) <= 1, "an image was requested twice"


def test_postgres_restarted_while_runs_are_queued_the_queue_drains(stack, instance, fake_gemini_for_stack):
    reset(fake_gemini_for_stack, latency_s=1.0)
    prefix = unique_prefix()
    campaigns = [f"{prefix}-pg{i}" for i in range(1, 6)]
    for campaign in campaigns:
        write_brief(Path(os.environ["ADCHAIN_DATA_DIR"]) / "briefs", campaign, SCENES)
    wait_until("a run waiting in the queue", lambda: any(r.dagster_run.status == dg.DagsterRunStatus.QUEUED for r in campaign_runs(instance, prefix)), timeout_s=300, poll_s=0.5)
    pg = ["/usr/lib/postgresql/15/bin/pg_ctl", "-D", str(Path(os.environ["STACK_DIR"]) / "pg"), "-m", "fast", "-w", "restart",
          "-o", os.environ["STACK_PG_OPTIONS"]]
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    restarted_at = time.monotonic()
    done = subprocess.run(as_pg + pg + ["-l", str(Path(os.environ["STACK_DIR"]) / "pg" / "server.log")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # postmaster.pid names the new server: the stack's pid file follows it
    (Path(os.environ["STACK_DIR"]) / "pids" / "postgres.pid").write_text((Path(os.environ["STACK_DIR"]) / "pg" / "postmaster.pid").read_text().splitlines()[0] + "\n")
    wait_until("every campaign to succeed after the restart", lambda: campaigns_done(instance, campaigns), timeout_s=1500, poll_s=2)
    records = campaign_runs(instance, prefix)
    record("postgres_restart", {
        "runs": len(records), "succeeded": sum(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records),
        "failed_then_retried": sum(r.dagster_run.status == dg.DagsterRunStatus.FAILURE for r in records),
        "seconds_from_restart_to_drained": round(time.monotonic() - restarted_at, 1),
        "images_made": sum(len(stored_images(c)) for c in campaigns),
    })
    assert all(len(stored_images(c)) == IMAGES_PER_CAMPAIGN for c in campaigns)


def test_adchain_materialize_submits_to_the_queue_and_follows_the_run(stack, instance, fake_gemini_for_stack):
    """With the stack's env sourced, the CLI does not execute the run: it queues it through the webserver. The
    sensor sees the same new brief and queues its own run: the queue's tag limit keeps the two apart."""
    import sys

    reset(fake_gemini_for_stack, latency_s=0.5)
    campaign = f"{unique_prefix()}-cli"
    write_brief(Path(os.environ["ADCHAIN_DATA_DIR"]) / "briefs", campaign, SCENES)
    adchain = str(Path(sys.executable).parent / "adchain")
    done = subprocess.run([adchain, "materialize", campaign], env=dict(os.environ), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"{campaign}: " in done.stdout and "outputs made" in done.stdout, done.stdout
    assert len(stored_images(campaign)) == IMAGES_PER_CAMPAIGN
    assert "queued" in done.stderr and "success" in done.stderr  # it followed the run through the queue
    wait_until("the sensor's run too", lambda: campaigns_done(instance, [campaign]), timeout_s=600)
    records = campaign_runs(instance, campaign)
    cli_runs = [r for r in records if r.dagster_run.tags.get("adchain/launched_by") == "cli"]
    assert len(cli_runs) == 1 and cli_runs[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert instance.all_logs(cli_runs[0].dagster_run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
    assert max_overlap(intervals(records)) == 1, "two runs of one campaign at once"
    record("cli_through_the_queue", {"runs": len(records), "cli_stderr": done.stderr.strip().splitlines()[-4:]})


def test_adchain_refuses_to_queue_when_the_webserver_does_not_answer(stack, tmp_path):
    import sys

    adchain = str(Path(sys.executable).parent / "adchain")
    (tmp_path / "briefs").mkdir()
    write_brief(tmp_path / "briefs", "unreachable", SCENES)  # outside the watched folder: no sensor run
    env = {**os.environ, "ADCHAIN_DATA_DIR": str(tmp_path), "ADCHAIN_WEBSERVER_URL": "http://127.0.0.1:9"}  # nothing listens there
    done = subprocess.run([adchain, "materialize", "unreachable"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "ADCHAIN_WEBSERVER_URL=http://127.0.0.1:9: the webserver does not answer" in done.stderr
