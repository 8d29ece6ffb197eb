"""``adchain``: validate briefs, materialize campaigns and read their status from the command line.

Runs go into the Dagster instance in ``DAGSTER_HOME`` (``.dagster_home/`` here when unset), so whatever the
CLI does shows up in the UI. With ``ADCHAIN_WEBSERVER_URL`` set (a production instance with a daemon, as
``make stack`` starts), ``materialize``/``regenerate``/``demo`` submit their runs to the daemon's queue and follow
them (adchain_assets/run_queue.py) instead of executing them here. Exit codes: 0 done, 1 a generation or run failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# The CLI prints its own summary; the full event log is in the instance, where the UI shows it.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _use_default_dagster_home() -> None:
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(Path.cwd() / ".dagster_home")
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    _create_instance_alone(Path(os.environ["DAGSTER_HOME"]))


def _create_instance_alone(home: Path) -> None:
    """Open the instance once under a lock in ``home``, so that commands started together on a fresh home do not
    race to create (and migrate) its storage: sqlite's schema creation is not safe against a concurrent creator,
    and the losers left two alembic heads behind. Later opens find the schema made and take the lock briefly."""
    from dagster import DagsterInstance

    with open(home / ".adchain-instance.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with DagsterInstance.get():
            pass


def campaign_job():
    """The campaign job, importable by path so that its steps can run in other processes."""
    from adchain_assets.definitions import CAMPAIGN_JOB, defs

    return defs.resolve_job_def(CAMPAIGN_JOB)


def failure_line(step_key: str, error) -> str:
    """``<asset>: <root cause>`` for a failed step; a ``Failure`` raised by the asset already names it."""
    while error is not None and error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    cause = error.message.strip() if error else "unknown error"
    if error is not None and error.cls_name == "Failure":
        cause = cause.split(": ", 1)[-1]  # drop the exception's dotted class name
    asset = step_key.replace("__", "/")
    return cause if cause.startswith(asset) else f"{asset}: {cause}"


def _failures(result) -> list[str]:
    return [
        failure_line(event.step_key, event.step_failure_data.error)
        for event in result.all_events
        if event.is_step_failure
    ]


def _load(campaign: str):
    from adchain_assets.resources import CampaignBriefs
    from adchain_assets.settings import Settings

    settings = Settings.from_env()
    return settings, CampaignBriefs(data_dir=settings.data_dir, max_scenes=settings.max_scenes).load(campaign)


CLI_TAG = "adchain/launched_by"
WAIT_FOR_OTHER_RUNS_S = 3600


@contextmanager
def campaign_exclusive(instance, campaign: str):
    """Run alone on ``campaign`` on the embedded instance (no daemon, no run queue: see ``execute_campaign``):
    the UI's and the sensor's runs are limited by the run queue's tag limit; the CLI executes directly, so it
    waits for them, and a lock file keeps two CLI runs apart on this machine.

    The lock dies with its process, so a CLI run still marked as started while nobody holds the lock was
    killed: it is marked failed rather than waited for, and its model-pool slots are given back. With no daemon
    there is no run monitoring to do that, and Dagster has no public call for it: these are the only two calls
    of the instance's internals left, and only on this embedded path; with a daemon, runs go through the queue.
    """
    from dagster import DagsterRunStatus, RunsFilter

    lock_path = Path(instance.root_directory) / "adchain-locks" / f"{campaign}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{campaign}: waiting for another adchain run of this campaign to finish", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        in_progress = RunsFilter(
            tags={"dagster/partition": campaign},
            statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED],
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


def execute_campaign(campaign: str, slots, *, run_config: Optional[dict] = None, out=sys.stdout) -> int:
    """One run of the campaign job on ``campaign``'s partition: ``slots`` and the storyboard sheet."""
    from dagster import DagsterInstance, DagsterRunStatus, execute_job, reconstructable

    from adchain_assets.chains import campaigns, run_selection
    from adchain_assets.definitions import CAMPAIGN_JOB
    from adchain_assets.settings import Settings
    from adchain_assets.storage import CampaignFiles

    instance = DagsterInstance.get()
    if not instance.has_dynamic_partition(campaigns.name, campaign):
        instance.add_dynamic_partitions(campaigns.name, [campaign])
    started = time.perf_counter()
    webserver = os.environ.get("ADCHAIN_WEBSERVER_URL", "").strip()
    if webserver:
        # A production instance: the run goes through the daemon's queue (its tag limit keeps one run per
        # campaign) and runs on the instance's workers; this process only follows it.
        from adchain_assets import run_queue

        try:
            run_id = run_queue.submit(
                webserver, CAMPAIGN_JOB, campaign, run_selection(slots), tags={CLI_TAG: "cli"}, run_config=run_config or {}
            )
            outcome = run_queue.follow(instance, run_id, label=campaign)
        except run_queue.QueueUnavailable as error:
            print(f"{campaign}: {error}", file=sys.stderr)
            return EXIT_FAILED
        if outcome.status != DagsterRunStatus.SUCCESS:
            for line in run_queue.failure_lines(instance, outcome.run_ids[-1], failure_line):
                print(f"{campaign}: {line}", file=sys.stderr)
            return EXIT_FAILED
    else:
        with campaign_exclusive(instance, campaign):
            result = execute_job(
                reconstructable(campaign_job),
                instance=instance,
                tags={"dagster/partition": campaign, CLI_TAG: "cli"},
                run_config={**QUIET, **(run_config or {})},
                asset_selection=run_selection(slots),
            )
        if not result.success:
            for line in _failures(result) or [f"run {result.run_id} failed"]:
                print(f"{campaign}: {line}", file=sys.stderr)
            return EXIT_FAILED
    files = CampaignFiles(base_path=Settings.from_env().data_dir)
    made = [image for image in (files.read_image(campaign, slot) for slot in slots) if image is not None]
    paid = sum(float(image.provenance["cost_usd"]) for image in made)
    hits = sum(1 for image in made if image.provenance["cache_hit"])
    print(
        f"{campaign}: {len(made)} images ({hits} from the cache) in {time.perf_counter() - started:.1f}s,"
        f" ${paid:.3f}; storyboard: {files.campaign_dir(campaign) / 'storyboard.png'}",
        file=out,
    )
    return EXIT_OK


def run_campaign(campaign: str, *, out=sys.stdout) -> int:
    """Register ``campaign`` as a partition and materialize every image of its brief."""
    from adchain_assets.brief import BriefError
    from adchain_assets.references import CHAINS, Slot

    try:
        _, loaded = _load(campaign)
    except BriefError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    slots = [Slot(chain, k) for k in range(1, len(loaded.brief.scenes) + 1) for chain in CHAINS]
    return execute_campaign(campaign, slots, out=out)


def cmd_validate(args) -> int:
    from adchain_assets.brief import BriefError, load_brief
    from adchain_assets.settings import Settings

    settings = Settings.from_env()
    status = EXIT_OK
    for path in args.briefs:
        try:
            loaded = load_brief(Path(path), max_scenes=settings.max_scenes)
        except BriefError as error:
            print(error, file=sys.stderr)
            status = EXIT_BAD_INPUT
        else:
            print(f"{path}: ok ({len(loaded.brief.scenes)} scenes, campaign {loaded.campaign})")
    return status


def cmd_materialize(args) -> int:
    return run_campaign(args.campaign)


def cmd_regenerate(args) -> int:
    """A new take of one image, then exactly the images downstream of it."""
    from adchain_assets.brief import BriefError
    from adchain_assets.chains import USER_IMAGE_IS_FIXED, new_take_config
    from adchain_assets.references import Slot, downstream_closure

    try:
        settings, loaded = _load(args.campaign)
    except BriefError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    scene_count = len(loaded.brief.scenes)
    if not 1 <= args.scene <= scene_count:
        print(f"{args.campaign}: --scene {args.scene}: the brief has scenes 1 to {scene_count}", file=sys.stderr)
        return EXIT_BAD_INPUT
    slot = Slot(args.chain, args.scene)
    if slot == Slot("reference", 1) and loaded.brief.reference_image:
        print(f"{args.campaign}: {slot} {USER_IMAGE_IS_FIXED}", file=sys.stderr)
        return EXIT_BAD_INPUT
    images = sorted(s for s in downstream_closure([slot], settings.max_scenes) if s.scene <= scene_count)
    return execute_campaign(args.campaign, images, run_config=new_take_config(slot))


def cmd_demo(args) -> int:
    """Every brief in ``<data>/briefs``, with the offline preview backend."""
    from adchain_assets.settings import Settings

    os.environ["ADCHAIN_IMAGE_BACKEND"] = "preview"
    briefs = sorted((Path(Settings.from_env().data_dir) / "briefs").glob("*.yaml"))
    if not briefs:
        print("no briefs found under data/briefs", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    codes = [run_campaign(path.stem) for path in briefs]
    print(f"demo: {len(briefs)} campaigns in {time.perf_counter() - started:.1f}s")
    return max(codes)


def cmd_status(args) -> int:
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

    from adchain_assets.brief import BriefError, campaign_id_problem
    from adchain_assets.references import CHAINS, Slot
    from adchain_assets.report import campaign_spend
    from adchain_assets.resources import CampaignBriefs
    from adchain_assets.settings import Settings
    from adchain_assets.storage import CampaignFiles

    campaign = args.campaign
    problem = campaign_id_problem(campaign)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = Settings.from_env()
    files = CampaignFiles(base_path=settings.data_dir)
    try:
        scene_count = len(CampaignBriefs(data_dir=settings.data_dir, max_scenes=settings.max_scenes).load(campaign).brief.scenes)
    except BriefError as error:
        print(f"brief: {error}")
        scene_count = settings.max_scenes
    total = 0.0
    print(f"{'image':<20}{'take':>5}  {'backend':<9}{'cost':>9}  cached  created")
    for k in range(1, scene_count + 1):
        for chain in CHAINS:
            slot = Slot(chain, k)
            image = files.read_image(campaign, slot)
            if image is None:
                print(f"{slot.key:<20}{'-':>5}  not materialized")
                continue
            record = image.provenance
            total += float(record["cost_usd"])
            cached = "yes" if record.get("cache_hit") else "no"
            print(f"{slot.key:<20}{record['take']:>5}  {record['backend']:<9}${float(record['cost_usd']):>8.4f}  {cached:<6}  {record['created_at']}")
    instance = DagsterInstance.get()
    runs = instance.get_runs(RunsFilter(tags={"dagster/partition": campaign}), limit=1)
    if runs and runs[0].status == DagsterRunStatus.FAILURE:
        print(f"last run {runs[0].run_id} failed:")
        for record in instance.all_logs(runs[0].run_id, of_type=DagsterEventType.STEP_FAILURE):
            print("  " + failure_line(record.dagster_event.step_key, record.dagster_event.step_failure_data.error))
    elif runs:
        print(f"last run {runs[0].run_id}: {runs[0].status.value}")
    print(f"cost of these images: ${total:.4f}; spent on this campaign so far, every take and run: ${campaign_spend(instance, campaign, scene_count):.4f}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adchain", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check brief files; exit 2 naming every problem")
    validate.add_argument("briefs", nargs="+", metavar="BRIEF.yaml")
    validate.set_defaults(handler=cmd_validate)
    materialize = commands.add_parser("materialize", help="make every image of a campaign")
    materialize.add_argument("campaign")
    materialize.set_defaults(handler=cmd_materialize)
    status = commands.add_parser("status", help="what is made, what failed, cost so far")
    status.add_argument("campaign")
    status.set_defaults(handler=cmd_status)
    regenerate = commands.add_parser("regenerate", help="a new take of one image, then its downstream images")
    regenerate.add_argument("campaign")
    regenerate.add_argument("--scene", type=int, required=True, metavar="K")
    regenerate.add_argument("--chain", choices=("reference", "start", "end"), default="reference")
    regenerate.set_defaults(handler=cmd_regenerate)
    demo = commands.add_parser("demo", help="materialize every sample brief offline")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from adchain_assets.settings import SettingsError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_BAD_INPUT if exit_.code else EXIT_OK
    _use_default_dagster_home()
    try:
        return args.handler(args)
    except SettingsError as error:
        print(f"adchain: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
