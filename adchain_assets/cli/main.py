"""``adchain``: validate briefs, materialize campaigns and read their status from the command line.

Runs go into the Dagster instance in ``DAGSTER_HOME`` (``.dagster_home/`` in the current folder when unset), so
whatever the CLI does shows up in the UI (:mod:`adchain_assets.cli.runs`). What a command runs is the campaign's
plan, computed from what is stored, as the sensor computes it. Exit codes: 0 done, 1 a generation or run
failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from adchain_assets.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:  # the commands import what they use when they run, so `adchain --help` stays fast
    from adchain_assets.brief.model import LoadedBrief
    from adchain_assets.plan.plan import Plan
    from adchain_assets.settings import Settings


def _use_default_dagster_home() -> None:
    from adchain_assets.cli.runs import create_instance_alone

    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(Path.cwd() / ".dagster_home")
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    create_instance_alone(Path(os.environ["DAGSTER_HOME"]))


@dataclass
class Campaign:
    """A campaign as a command sees it: the settings, the resources, the brief as it is now and its plan."""

    settings: "Settings"
    resources: dict
    loaded: "LoadedBrief"
    plan: "Plan"


def open_campaign(campaign: str) -> Campaign:
    """The campaign's brief (checked against the configured models) and its plan; ``BriefError`` if unusable."""
    from adchain_assets.brief.model import BriefError, BriefProblem, campaign_id_problem
    from adchain_assets.defs.resources import build_resources, current_plan, model_problems
    from adchain_assets.settings import Settings
    from adchain_assets.vision.photos import photo_problems

    problem = campaign_id_problem(campaign)
    if problem:
        raise BriefError([BriefProblem(campaign, "", problem)])
    settings = Settings.from_env()
    resources = build_resources(settings)
    loaded = resources["briefs"].load(campaign)
    problems = model_problems(loaded, resources["image_model"], resources["video_model"]) + photo_problems(loaded)
    if problems:  # what the configured models cannot make, a photo that cannot anchor: bad input, before any call
        raise BriefError(problems)
    plan = current_plan(loaded, resources["storage"], resources["image_model"], resources["video_model"],
                        budget_usd=resources["briefs"].budget_of(loaded))
    return Campaign(settings, resources, loaded, plan)


def run_plan(opened: Campaign, *, out=sys.stdout) -> int:
    """Make whatever the campaign's plan says is missing or out of date (registering its partition)."""
    import dagster as dg

    from adchain_assets.cli.runs import execute_campaign, register
    from adchain_assets.defs.costs import estimate_tags
    from adchain_assets.defs.jobs import asset_keys
    from adchain_assets.plan.review import APPROVED, APPROVED_BUT_MISSING

    campaign, plan = opened.loaded.campaign, opened.plan
    failed = [(name, reason) for name, reason in plan.held
              if not reason.startswith(APPROVED) or reason == APPROVED_BUT_MISSING]
    for name, reason in failed:
        print(f"{campaign}: {name} held ({reason}); change its text or ask for a new take", file=sys.stderr)
    for name, reason in plan.held:
        if reason.startswith(f"{APPROVED};"):  # what an approval holds back
            print(f"{campaign}: {name} kept as approved ({reason}); `adchain unapprove` lets it be made again",
                  file=sys.stderr)
    if not plan.outdated:
        register(dg.DagsterInstance.get(), campaign)  # a partition even when nothing is left to make
        print(f"{campaign}: up to date, nothing to make", file=out)
        return EXIT_FAILED if failed else EXIT_OK
    refusal = plan.estimate.refusal(campaign) if plan.estimate else None
    if refusal:  # over the campaign's budget: nothing is launched (bad input: the brief's budget or the change)
        print(refusal, file=sys.stderr)
        return EXIT_BAD_INPUT
    sha = opened.resources["briefs"].pin(opened.loaded)
    if plan.estimate:
        print(f"{campaign}: making {len(plan.outdated)} outputs, estimate {plan.estimate.summary()}", file=out)
    code = execute_campaign(opened.settings, campaign, asset_keys(plan.outputs), brief_sha256=sha, out=out,
                            tags=estimate_tags(opened.resources["storage"], plan))
    return EXIT_FAILED if failed and code == EXIT_OK else code


def run_campaign(campaign: str, *, out=sys.stdout) -> int:
    """Register ``campaign`` as a partition and make whatever its plan says is missing or out of date."""
    from adchain_assets.brief.model import BriefError

    try:
        opened = open_campaign(campaign)
    except BriefError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_plan(opened, out=out)


def cmd_validate(args) -> int:
    from adchain_assets.brief.lint import lint_messages
    from adchain_assets.brief.model import BriefError, load_brief
    from adchain_assets.defs.resources import build_resources, model_problems
    from adchain_assets.plan.requests import reference_warnings
    from adchain_assets.settings import Settings
    from adchain_assets.vision.photos import photo_problems

    settings = Settings.from_env()
    resources = build_resources(settings)
    image_model, video_model = resources["image_model"], resources["video_model"]
    status = EXIT_OK
    for path in args.briefs:
        try:
            loaded = load_brief(Path(path), max_scenes=settings.max_scenes)
            problems = model_problems(loaded, image_model, video_model)
            if not problems:
                problems = photo_problems(loaded)
            if problems:  # what the configured models cannot make, a photo that cannot anchor: before any call
                raise BriefError(problems)
        except BriefError as error:
            print(error, file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        warnings = lint_messages(loaded) + reference_warnings(loaded, image_model.maker())
        if args.strict and warnings:  # the lint's warnings are errors: the same lines, and exit 2
            print("\n".join(warnings), file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        print(f"{path}: ok ({len(loaded.brief.scenes)} scenes, campaign {loaded.campaign})")
        for line in warnings:  # on stdout: stderr is for what makes the exit status 2
            print(f"warning: {line}")
    return status


def cmd_doctor(args) -> int:
    from adchain_assets.cli.doctor import doctor

    return doctor()


def cmd_models(args) -> int:
    from adchain_assets.cli.doctor import models

    return models()


def cmd_materialize(args) -> int:
    return run_campaign(args.campaign)


def cmd_regenerate(args) -> int:
    """A new take of one image or one subject's sheet (with ``--note``: the model's edit of the current take),
    then whatever the plan calls out of date below it."""
    from adchain_assets.brief.model import BriefError
    from adchain_assets.cli.review import approval_problem, regenerate_directed
    from adchain_assets.cli.runs import execute_campaign
    from adchain_assets.defs.images import USER_IMAGE_IS_FIXED, new_take_config
    from adchain_assets.defs.jobs import asset_keys
    from adchain_assets.defs.sheets import sheets_new_take_config
    from adchain_assets.plan.references import Slot, sheet_output

    try:
        opened = open_campaign(args.campaign)
    except BriefError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    brief = opened.loaded.brief
    if args.subject is not None:
        ids = [s.id for s in brief.subjects]
        if args.subject not in ids:
            print(f"{args.campaign}: --subject {args.subject}: not a subject of the brief ({', '.join(ids) or 'none'})",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        if brief.reference_mode != "sheets":
            print(f"{args.campaign}: --subject {args.subject}: the brief's reference_mode is {brief.reference_mode};"
                  " subjects have sheets only with reference_mode: sheets", file=sys.stderr)
            return EXIT_BAD_INPUT
        if brief.subject(args.subject).photo:
            print(f"{args.campaign}: {sheet_output(args.subject)} is the subject's own photo, used as is; it cannot"
                  " be regenerated (change the photo instead)", file=sys.stderr)
            return EXIT_BAD_INPUT
        output, run_config = sheet_output(args.subject), sheets_new_take_config([args.subject])
    else:
        scene_count = len(brief.scenes)
        if not 1 <= args.scene <= scene_count:
            print(f"{args.campaign}: --scene {args.scene}: the brief has scenes 1 to {scene_count}", file=sys.stderr)
            return EXIT_BAD_INPUT
        slot = Slot(args.chain, args.scene)
        if slot == Slot("reference", 1) and brief.reference_image:
            print(f"{args.campaign}: {slot} {USER_IMAGE_IS_FIXED}", file=sys.stderr)
            return EXIT_BAD_INPUT
        output, run_config = slot.key, new_take_config(slot)
    approved = approval_problem(opened, output)
    if approved:
        print(approved, file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.note is not None or args.clear_notes:
        return regenerate_directed(opened, output, args.note, args.clear_notes)
    sha = opened.resources["briefs"].pin(opened.loaded)
    code = execute_campaign(opened.settings, args.campaign, asset_keys([output]), brief_sha256=sha,
                            run_config=run_config)
    if code != EXIT_OK:
        return code
    return run_campaign(args.campaign)  # what follows the new take, exactly as the plan now says


def cmd_demo(args) -> int:
    """Every brief in ``<data>/briefs``, with the offline preview backends whatever is exported."""
    from adchain_assets.settings import Settings

    os.environ["ADCHAIN_IMAGE_BACKEND"] = "preview"  # the run's step processes read the environment too
    os.environ["ADCHAIN_VIDEO_BACKEND"] = "preview"
    folder = Settings.from_env().briefs_dir
    briefs = sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    if not briefs:
        print(f"no briefs found under {folder}", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    codes = [run_campaign(path.stem) for path in briefs]
    print(f"demo: {len(briefs)} campaigns in {time.perf_counter() - started:.1f}s")
    return max(codes)


def cmd_plan(args) -> int:
    """What is out of date with the brief, and why, and what it should cost; held requests apart."""
    from adchain_assets.brief.model import BriefError
    from adchain_assets.plan.estimate import money

    try:
        plan = open_campaign(args.campaign).plan
    except BriefError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
        return EXIT_OK
    print(f"{plan.campaign} (brief {plan.brief_sha256[:12]}): {len(plan.outdated)} out of date, {len(plan.held)} held")
    estimate = plan.estimate
    for name, reason in plan.outdated:
        one = estimate.outputs.get(name) if estimate else None
        price = "" if one is None else f"  {'unknown' if one.usd is None else f'${one.usd:.4f}':>9}  {one.basis}"
        print(f"  {name:<20} {reason:<34}{price}")
    for name, reason in plan.held:
        print(f"  {name:<20} held: {reason}")
    if estimate and plan.outdated:
        budget = "no budget" if estimate.budget_usd is None else f"budget {money(estimate.budget_usd)}"
        print(f"estimate {estimate.summary()}; spent so far {money(estimate.spent_usd)}, {budget}"
              " (retries are not counted: docs/costs.md)")
        refusal = estimate.refusal(plan.campaign)
        if refusal:
            print(f"not launched: {refusal}")
    return EXIT_OK


def cmd_status(args) -> int:
    import dagster as dg

    from adchain_assets.brief.model import BriefError, campaign_id_problem
    from adchain_assets.cli.runs import failure_line
    from adchain_assets.plan.requests import output_names, outputs_of
    from adchain_assets.settings import Settings
    from adchain_assets.store.files import CampaignFiles
    from adchain_assets.store.ledger import Ledger
    from adchain_assets.store.review import ReviewStore

    campaign = args.campaign
    problem = campaign_id_problem(campaign)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = Settings.from_env()
    files = CampaignFiles(settings.storage_url)
    spend = Ledger(settings.storage_url).spend(campaign)
    failed: dict[str, str] = {}
    budget = settings.budget_usd
    try:
        opened = open_campaign(campaign)
        names = outputs_of(opened.loaded.brief)
        plan = opened.plan
        budget = opened.resources["briefs"].budget_of(opened.loaded)
        failed = {n: r for n, r in plan.held + plan.outdated if r.startswith(("final failure", "last attempt failed"))}
        brief_note = None
    except BriefError as error:
        names = output_names(settings.max_scenes)
        brief_note = str(error)
    outputs = {}
    records = files.read_provenances(campaign, names)
    approvals = ReviewStore(settings.storage_url).read(campaign).approvals
    for name in names:
        record = records[name]
        approval = approvals.get(name)
        signed = {"approved": approval is not None,
                  **({"approved_by": approval.by, "approved_at": approval.at} if approval else {})}
        if record is None:
            outputs[name] = {"state": "failed" if name in failed else "missing",
                             **({"reason": failed[name]} if name in failed else {}), **signed}
            continue
        outputs[name] = {
            "state": "made", "take": int(record.get("take", 0)), "sha256": record.get("sha256"),
            "brief_sha256": record.get("brief_sha256"), "cache_hit": bool(record.get("cache_hit", False)),
            "backend": record.get("backend"), "note": record.get("note"), **signed,
        }
    remaining = None if budget is None else round(max(0.0, budget - spend.spend_usd), 6)
    if args.json:
        print(json.dumps({
            "campaign": campaign, "spend_usd": spend.spend_usd, "paid_calls": spend.paid_calls,
            "unpriced_calls": spend.unpriced_calls, "budget_usd": budget, "remaining_usd": remaining,
            "outputs": outputs,
        }, indent=2))
        return EXIT_OK
    if brief_note:
        print(f"brief: {brief_note}")
    wide = max([20] + [len(name) + 2 for name in outputs])  # placements/9x16/start/scene_2 is longer
    print(f"{'output':<{wide}}{'state':<9}{'take':>5}  {'backend':<9}cached  sha256")
    for name, info in outputs.items():
        if info["state"] != "made":
            print(f"{name:<{wide}}{info['state']:<9}{'-':>5}  {info.get('reason', '')}")
            continue
        signed = f"  approved by {info['approved_by']}" if info["approved"] else ""
        print(f"{name:<{wide}}{'made':<9}{info['take']:>5}  {str(info['backend'] or '-'):<9}"
              f"{'yes' if info['cache_hit'] else 'no':<6}  {str(info['sha256'])[:12]}{signed}")
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": campaign}), limit=1)
    if runs and runs[0].status == dg.DagsterRunStatus.FAILURE:
        print(f"last run {runs[0].run_id} failed:")
        for record in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            print("  " + failure_line(record.dagster_event.step_key, record.dagster_event.step_failure_data.error))
    elif runs:
        print(f"last run {runs[0].run_id}: {runs[0].status.value}")
    unpriced = f" ({spend.unpriced_calls} calls of models without a known price not counted)" if spend.unpriced_calls else ""
    print(f"spent on this campaign so far (the ledger: every call, take and run): ${spend.spend_usd:.4f}"
          f" over {spend.paid_calls} paid calls{unpriced}")
    if budget is None:
        print("budget: none (set budget_usd in the brief, or ADCHAIN_BUDGET_USD)")
    else:
        print(f"budget: ${budget:.4f}, spent ${spend.spend_usd:.4f}, remaining ${remaining:.4f}")
    return EXIT_OK


def cmd_export(args) -> int:
    from adchain_assets.cli.export import export

    return export(args.campaign, zip_path=args.zip, to=args.to)


def build_parser() -> argparse.ArgumentParser:
    from adchain_assets.cli.draft import add_parser as add_draft_parser
    from adchain_assets.cli.review import add_parsers as add_review_parsers

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
    regenerate = commands.add_parser(
        "regenerate", help="a new take of one image or subject sheet, then what the plan says follows it")
    regenerate.add_argument("campaign")
    which = regenerate.add_mutually_exclusive_group(required=True)
    which.add_argument("--scene", type=int, metavar="K", help="the scene of the image (with --chain)")
    which.add_argument("--subject", metavar="ID", help="a subject whose sheet to make again (reference_mode: sheets)")
    regenerate.add_argument("--chain", choices=("reference", "start", "end"), default="reference")
    regenerate.add_argument("--note", metavar="TEXT",
                            help="a director's note: the new take is the model's edit of the current take, changing"
                            " what the note says; the note stays with the image as direction")
    regenerate.add_argument("--clear-notes", action="store_true",
                            help="drop the image's notes (then make what the plan says; with --note: before it)")
    regenerate.set_defaults(handler=cmd_regenerate)
    add_review_parsers(commands)
    export = commands.add_parser("export", help="write a campaign's deliverables out: a zip or a folder")
    export.add_argument("campaign")
    where = export.add_mutually_exclusive_group()
    where.add_argument("--zip", metavar="PATH", help="a zip of the deliverables and their manifest")
    where.add_argument("--to", metavar="DIR", help="a folder (default ./<campaign>-deliverables)")
    export.set_defaults(handler=cmd_export)
    demo = commands.add_parser("demo", help="materialize every sample brief offline")
    demo.set_defaults(handler=cmd_demo)
    doctor = commands.add_parser("doctor", help="check the set-up (key, endpoint, models, prices, folders); exit 1 on a failed check")
    doctor.set_defaults(handler=cmd_doctor)
    models = commands.add_parser("models", help="the model catalogue: routes, shapes, prices, shutdown dates, sources")
    models.set_defaults(handler=cmd_models)
    add_draft_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from adchain_assets.settings import Settings, SettingsError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_BAD_INPUT if exit_.code else EXIT_OK
    if args.command != "doctor":  # doctor reports bad settings as one of its checks
        try:
            Settings.from_env()  # a bad variable is named before anything else happens
        except SettingsError as error:
            print(f"adchain: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
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
