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


def execute_campaign(campaign: str, selection, *, brief_sha256: str, run_config: Optional[dict] = None,
                     out=sys.stdout) -> int:
    """One run of the campaign job on ``campaign``'s partition: the ``selection`` of asset keys, with the brief
    snapshot ``brief_sha256`` pinned."""
    from dagster import DagsterInstance, DagsterRunStatus, execute_job, reconstructable

    from adchain_assets.chains import campaigns
    from adchain_assets.definitions import CAMPAIGN_JOB
    from adchain_assets.ledger import Ledger
    from adchain_assets.settings import Settings
    from adchain_assets.snapshots import BRIEF_TAG
    from adchain_assets.storage import CampaignFiles

    instance = DagsterInstance.get()
    if not instance.has_dynamic_partition(campaigns.name, campaign):
        instance.add_dynamic_partitions(campaigns.name, [campaign])
    settings = Settings.from_env()
    ledger = Ledger(settings.storage_url)
    before = ledger.spend(campaign)
    started = time.perf_counter()
    webserver = os.environ.get("ADCHAIN_WEBSERVER_URL", "").strip()
    if webserver:
        # A production instance: the run goes through the daemon's queue (its tag limit keeps one run per
        # campaign) and runs on the instance's workers; this process only follows it.
        from adchain_assets import run_queue

        try:
            run_id = run_queue.submit(
                webserver, CAMPAIGN_JOB, campaign, list(selection),
                tags={CLI_TAG: "cli", BRIEF_TAG: brief_sha256}, run_config=run_config or {},
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
                tags={"dagster/partition": campaign, CLI_TAG: "cli", BRIEF_TAG: brief_sha256},
                run_config={**QUIET, **(run_config or {})},
                asset_selection=list(selection),
            )
        if not result.success:
            for line in _failures(result) or [f"run {result.run_id} failed"]:
                print(f"{campaign}: {line}", file=sys.stderr)
            return EXIT_FAILED
    files = CampaignFiles(base_path=settings.storage_url)
    after = ledger.spend(campaign)
    made = [key.to_user_string() for key in selection]
    print(
        f"{campaign}: {len(made)} outputs made in {time.perf_counter() - started:.1f}s,"
        f" {after.paid_calls - before.paid_calls} paid calls, ${after.spend_usd - before.spend_usd:.4f};"
        f" storyboard: {files.output_path(campaign, 'storyboard')}",
        file=out,
    )
    return EXIT_OK


def _plan(campaign: str):
    """The campaign's brief as it is now, and its plan."""
    from adchain_assets.plan import plan_with
    from adchain_assets.resources import CampaignBriefs, ImageModel, VideoModel
    from adchain_assets.settings import Settings
    from adchain_assets.storage import CampaignFiles

    settings = Settings.from_env()
    briefs = CampaignBriefs(data_dir=settings.data_dir, max_scenes=settings.max_scenes, storage_url=settings.storage_url)
    loaded = briefs.load(campaign)
    from adchain_assets.brief import BriefError
    from adchain_assets.catalogue import models_in_use, problems_for

    problems = problems_for(loaded.brief, *models_in_use(settings), file=str(loaded.path))
    if problems:  # what the configured models cannot make: bad input, before any call
        raise BriefError(problems)
    files = CampaignFiles(base_path=settings.storage_url)
    image_model = ImageModel(backend=settings.image_backend, model=settings.image_model)
    video_model = VideoModel(backend=settings.video_backend, model=settings.video_model)
    return briefs, loaded, plan_with(loaded, files, image_model, video_model)


def run_campaign(campaign: str, *, out=sys.stdout) -> int:
    """Register ``campaign`` as a partition and make whatever its plan says is missing or out of date."""
    from adchain_assets.brief import BriefError, campaign_id_problem
    from adchain_assets.snapshots import pin

    problem = campaign_id_problem(campaign)
    if problem:
        print(f"{campaign}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        briefs, loaded, plan = _plan(campaign)
    except BriefError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    for name, reason in plan.held:
        print(f"{campaign}: {name} held ({reason}); change its text or ask for a new take", file=sys.stderr)
    if not plan.outdated:
        from dagster import DagsterInstance

        from adchain_assets.chains import campaigns

        instance = DagsterInstance.get()  # registered as a partition even when nothing is left to make
        if not instance.has_dynamic_partition(campaigns.name, campaign):
            instance.add_dynamic_partitions(campaigns.name, [campaign])
        print(f"{campaign}: up to date, nothing to make", file=out)
        return EXIT_FAILED if plan.held else EXIT_OK
    sha = pin(loaded, briefs.storage)
    code = execute_campaign(campaign, plan.asset_selection(), brief_sha256=sha, out=out)
    return EXIT_FAILED if plan.held and code == EXIT_OK else code


def cmd_validate(args) -> int:
    from adchain_assets.brief import BriefError, load_brief
    from adchain_assets.lint import lint_messages
    from adchain_assets.settings import Settings

    settings = Settings.from_env()
    status = EXIT_OK
    from adchain_assets.catalogue import models_in_use, problems_for

    for path in args.briefs:
        try:
            loaded = load_brief(Path(path), max_scenes=settings.max_scenes)
            problems = problems_for(loaded.brief, *models_in_use(settings), file=str(path))
            if problems:  # what the configured models cannot make, before any call
                raise BriefError(problems)
        except BriefError as error:
            print(error, file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        warnings = lint_messages(loaded)
        if args.strict and warnings:  # the lint's warnings are errors: the same lines, and exit 2
            print("\n".join(warnings), file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        print(f"{path}: ok ({len(loaded.brief.scenes)} scenes, campaign {loaded.campaign})")
        for line in warnings:  # on stdout: stderr is for what makes the exit status 2
            print(f"warning: {line}")
    return status


def cmd_doctor(args) -> int:
    from adchain_assets.doctor import doctor

    return doctor()


def cmd_models(args) -> int:
    from adchain_assets.doctor import models

    return models()


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
    from adchain_assets.chains import run_selection
    from adchain_assets.snapshots import pin

    sha = pin(loaded, settings.storage_url)
    return execute_campaign(args.campaign, run_selection(images), brief_sha256=sha, run_config=new_take_config(slot))


def cmd_demo(args) -> int:
    """Every brief in ``<data>/briefs``, with the offline preview backend."""
    from adchain_assets.settings import Settings

    # Offline whatever is exported: the demo never calls a paid API.
    os.environ["ADCHAIN_IMAGE_BACKEND"] = "preview"
    os.environ["ADCHAIN_VIDEO_BACKEND"] = "preview"
    folder = Path(Settings.from_env().data_dir) / "briefs"
    briefs = sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    if not briefs:
        print("no briefs found under data/briefs", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    codes = [run_campaign(path.stem) for path in briefs]
    print(f"demo: {len(briefs)} campaigns in {time.perf_counter() - started:.1f}s")
    return max(codes)


def cmd_plan(args) -> int:
    """What is out of date with the brief, and why; held requests apart."""
    import json

    from adchain_assets.brief import BriefError, campaign_id_problem

    problem = campaign_id_problem(args.campaign)
    if problem:
        print(f"{args.campaign}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        _, _, plan = _plan(args.campaign)
    except BriefError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
        return EXIT_OK
    print(f"{plan.campaign} (brief {plan.brief_sha256[:12]}): {len(plan.outdated)} out of date, {len(plan.held)} held")
    for name, reason in plan.outdated:
        print(f"  {name:<20} {reason}")
    for name, reason in plan.held:
        print(f"  {name:<20} held: {reason}")
    return EXIT_OK


def cmd_status(args) -> int:
    import json

    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

    from adchain_assets.brief import BriefError, campaign_id_problem
    from adchain_assets.ledger import Ledger
    from adchain_assets.outputs import output_names
    from adchain_assets.settings import Settings
    from adchain_assets.storage import CampaignFiles

    campaign = args.campaign
    problem = campaign_id_problem(campaign)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = Settings.from_env()
    files = CampaignFiles(base_path=settings.storage_url)
    spend = Ledger(settings.storage_url).spend(campaign)
    failed: dict[str, str] = {}
    try:
        _, loaded, plan = _plan(campaign)
        names = output_names(len(loaded.brief.scenes))
        failed = {n: r for n, r in plan.held + plan.outdated if r.startswith(("final failure", "last attempt failed"))}
        brief_note = None
    except BriefError as error:
        names = output_names(settings.max_scenes)
        brief_note = str(error)
    outputs = {}
    records = files.read_provenances(campaign, names)
    for name in names:
        record = records[name]
        if record is None:
            outputs[name] = {"state": "failed" if name in failed else "missing", **({"reason": failed[name]} if name in failed else {})}
            continue
        outputs[name] = {
            "state": "made", "take": int(record.get("take", 0)), "sha256": record.get("sha256"),
            "brief_sha256": record.get("brief_sha256"), "cache_hit": bool(record.get("cache_hit", False)),
            "backend": record.get("backend"),
        }
    if args.json:
        print(json.dumps({
            "campaign": campaign, "spend_usd": spend.spend_usd, "paid_calls": spend.paid_calls,
            "unpriced_calls": spend.unpriced_calls, "outputs": outputs,
        }, indent=2))
        return EXIT_OK
    if brief_note:
        print(f"brief: {brief_note}")
    print(f"{'output':<20}{'state':<9}{'take':>5}  {'backend':<9}cached  sha256")
    for name, info in outputs.items():
        if info["state"] != "made":
            print(f"{name:<20}{info['state']:<9}{'-':>5}  {info.get('reason', '')}")
            continue
        print(f"{name:<20}{'made':<9}{info['take']:>5}  {str(info['backend'] or '-'):<9}{'yes' if info['cache_hit'] else 'no':<6}  {str(info['sha256'])[:12]}")
    instance = DagsterInstance.get()
    runs = instance.get_runs(RunsFilter(tags={"dagster/partition": campaign}), limit=1)
    if runs and runs[0].status == DagsterRunStatus.FAILURE:
        print(f"last run {runs[0].run_id} failed:")
        for record in instance.all_logs(runs[0].run_id, of_type=DagsterEventType.STEP_FAILURE):
            print("  " + failure_line(record.dagster_event.step_key, record.dagster_event.step_failure_data.error))
    elif runs:
        print(f"last run {runs[0].run_id}: {runs[0].status.value}")
    unpriced = f" ({spend.unpriced_calls} calls of models without a known price not counted)" if spend.unpriced_calls else ""
    print(f"spent on this campaign so far (the ledger: every call, take and run): ${spend.spend_usd:.4f}"
          f" over {spend.paid_calls} paid calls{unpriced}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adchain", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check brief files; exit 2 naming every problem")
    validate.add_argument("briefs", nargs="+", metavar="BRIEF.yaml")
    validate.add_argument("--strict", action="store_true",
                          help="the specificity lint's warnings are errors (exit 2); without it they are printed only")
    validate.set_defaults(handler=cmd_validate)
    materialize = commands.add_parser("materialize", help="make whatever of a campaign is missing or out of date")
    materialize.add_argument("campaign")
    materialize.set_defaults(handler=cmd_materialize)
    status = commands.add_parser("status", help="what is made, what failed, cost so far")
    status.add_argument("campaign")
    status.add_argument("--json", action="store_true", help="machine-readable (see the CONTRACT)")
    status.set_defaults(handler=cmd_status)
    plan = commands.add_parser("plan", help="what is out of date with the brief, and why")
    plan.add_argument("campaign")
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(handler=cmd_plan)
    regenerate = commands.add_parser("regenerate", help="a new take of one image, then its downstream images")
    regenerate.add_argument("campaign")
    regenerate.add_argument("--scene", type=int, required=True, metavar="K")
    regenerate.add_argument("--chain", choices=("reference", "start", "end"), default="reference")
    regenerate.set_defaults(handler=cmd_regenerate)
    demo = commands.add_parser("demo", help="materialize every sample brief offline")
    demo.set_defaults(handler=cmd_demo)
    doctor = commands.add_parser("doctor", help="check the set-up (key, endpoint, models, prices, folders); exit 1 on a failed check")
    doctor.set_defaults(handler=cmd_doctor)
    models = commands.add_parser("models", help="the model catalogue: routes, shapes, prices, shutdown dates, sources")
    models.set_defaults(handler=cmd_models)
    from adchain_assets.draft import add_parser as add_draft_parser

    add_draft_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from adchain_assets.settings import SettingsError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_BAD_INPUT if exit_.code else EXIT_OK
    try:
        _use_default_dagster_home()
    except OSError as error:
        if args.command != "doctor":  # doctor reports it as one of its checks
            print(f"adchain: DAGSTER_HOME={os.environ.get('DAGSTER_HOME')!r} cannot be used: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        return args.handler(args)
    except SettingsError as error:
        print(f"adchain: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
