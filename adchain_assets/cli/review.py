"""Review from the command line: ``adchain takes``, ``pick``, ``approve`` and ``unapprove``, and the director's
notes of ``adchain regenerate --note`` / ``--clear-notes`` (docs/review.md).

An OUTPUT is an asset key as ``adchain status --json`` prints it (``reference/scene_2``). Every check happens
before anything is written or run: an unknown output, a take that was never made, an output that is not made, a
note on the brief's own reference_image or on an approved image exit 2 naming it, and nothing is ever deleted
(a withdrawn approval and cleared notes stay in their records' history; every take stays kept).

What can be picked and noted is a generated image of a chain (``reference|start|end/scene_k``) or a subject's
sheet (``subjects/<id>``, in ``sheets`` mode; its run is the sheets step's, with the subject named in its config);
anything made can be approved but the storyboard and the report.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import TYPE_CHECKING, Optional

from adchain_assets.cli import EXIT_BAD_INPUT, EXIT_OK

if TYPE_CHECKING:
    from adchain_assets.cli.main import Campaign


def add_parsers(commands) -> None:
    takes = commands.add_parser("takes", help="every take kept of one image or sheet, with its note, scores, cost, sha256")
    takes.add_argument("campaign")
    takes.add_argument("output", metavar="OUTPUT", help="an asset key as `adchain status --json` prints it")
    takes.add_argument("--json", action="store_true", help="machine-readable (see the CONTRACT)")
    takes.set_defaults(handler=cmd_takes)
    pick = commands.add_parser("pick", help="make an earlier take current again, then what follows it")
    pick.add_argument("campaign")
    pick.add_argument("output", metavar="OUTPUT")
    pick.add_argument("--take", type=int, required=True, metavar="N")
    pick.set_defaults(handler=cmd_pick)
    approve = commands.add_parser("approve", help="sign outputs off: no run re-makes them until unapproved")
    approve.add_argument("campaign")
    approve.add_argument("outputs", nargs="*", metavar="OUTPUT")
    approve.add_argument("--all", action="store_true", help="every made output but the storyboard and the report")
    approve.add_argument("--by", metavar="NAME", help="who signs off (default: your user name)")
    approve.set_defaults(handler=cmd_approve)
    unapprove = commands.add_parser("unapprove", help="withdraw sign-offs: the next run may re-make them")
    unapprove.add_argument("campaign")
    unapprove.add_argument("outputs", nargs="*", metavar="OUTPUT")
    unapprove.add_argument("--all", action="store_true", help="every approved output")
    unapprove.add_argument("--by", metavar="NAME", help="who withdraws them (default: your user name)")
    unapprove.set_defaults(handler=cmd_unapprove)


def _opened(campaign: str) -> "Optional[Campaign]":
    from adchain_assets.brief.model import BriefError
    from adchain_assets.cli.main import open_campaign

    try:
        return open_campaign(campaign)
    except BriefError as error:
        print(error, file=sys.stderr)
        return None


def _user(name: Optional[str]) -> str:
    if name and name.strip():
        return name.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment (a container without a passwd entry)
        return "cli"


def output_problem(opened: "Campaign", output: str) -> Optional[str]:
    """Why ``output`` is not an output of the campaign (None when it is)."""
    from adchain_assets.plan.requests import outputs_of

    names = outputs_of(opened.loaded.brief)
    if output in names:
        return None
    return (f"{opened.loaded.campaign}: {output}: not an output of this campaign (its outputs: {', '.join(names)})")


def image_problem(opened: "Campaign", output: str) -> Optional[str]:
    """Why ``output`` cannot have takes or notes (None when it can)."""
    from adchain_assets.plan.review import is_user_image, takeable

    problem = output_problem(opened, output)
    if problem:
        return problem
    campaign = opened.loaded.campaign
    if is_user_image(output, opened.loaded):
        what, instead = (("the subject's own photo", "the photo") if output.startswith("subjects/")
                         else ("the brief's own reference_image", "reference_image"))
        return (f"{campaign}: {output} is {what}, used as is: it has no takes and takes no notes (change {instead}"
                " instead)")
    if not takeable(output, opened.loaded):
        return (f"{campaign}: {output} has no takes: only the generated images (reference, start, end) and subject"
                " sheets have")
    return None


def approval_problem(opened: "Campaign", output: str) -> Optional[str]:
    """Why ``output`` may not be changed now: it is approved (None when it is not)."""
    approval = opened.resources["storage"].review.approval(opened.loaded.campaign, output)
    if approval is None:
        return None
    return (f"{opened.loaded.campaign}: {output} is approved (by {approval.by} on {approval.at}); run `adchain"
            f" unapprove {opened.loaded.campaign} {output}` first")


def run_config_of(output: str, **config) -> dict:
    """The run config asking ``output``'s step for ``note=...`` or ``pick_take=N``: the image's own step, or the
    sheets step with the subject named."""
    from adchain_assets.defs.images import image_run_config
    from adchain_assets.defs.sheets import sheet_run_config
    from adchain_assets.plan.references import Slot
    from adchain_assets.plan.requests import kind_of, subject_of

    if kind_of(output) == "sheet":
        return sheet_run_config(subject_of(output), **config)
    return image_run_config(Slot.parse(output), **config)


def _made(opened: "Campaign", outputs: list[str]) -> dict[str, Optional[dict]]:
    return opened.resources["storage"].files.read_provenances(opened.loaded.campaign, outputs)


def cmd_takes(args) -> int:
    from adchain_assets.plan.review import takes_listing

    opened = _opened(args.campaign)
    if opened is None:
        return EXIT_BAD_INPUT
    problem = image_problem(opened, args.output)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    storage = opened.resources["storage"]
    current = _made(opened, [args.output])[args.output]
    listing = takes_listing(args.output, storage.takes.records(args.campaign, args.output), current)
    if not listing["takes"]:
        print(f"{args.campaign}: {args.output} is not made yet: it has no takes", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(listing, indent=2))
        return EXIT_OK
    print(f"{args.campaign} {args.output}: {len(listing['takes'])} takes kept; current: take {listing['current']}")
    print(f"   {'take':>4}  {'sha256':<12}  {'cost':>8}  {'made':<25}  note")
    for entry in listing["takes"]:
        cost = "-" if entry["cost_usd"] is None else f"${entry['cost_usd']:.4f}"
        edited = f" (edit of {entry['edited_from'][:12]})" if entry["edited_from"] else ""
        candidates = f" [{len(entry['candidates'])} candidates]" if entry["candidates"] else ""
        print(f" {'*' if entry['current'] else ' '} {entry['take']:>4}  {str(entry['sha256'])[:12]:<12}  {cost:>8}"
              f"  {str(entry['created_at']):<25}  {entry['note'] or '-'}{edited}{candidates}")
    return EXIT_OK


def cmd_pick(args) -> int:
    from adchain_assets.cli.main import run_campaign
    from adchain_assets.cli.runs import execute_campaign
    from adchain_assets.defs.jobs import asset_keys
    from adchain_assets.plan.review import takes_listing

    opened = _opened(args.campaign)
    if opened is None:
        return EXIT_BAD_INPUT
    problem = image_problem(opened, args.output) or approval_problem(opened, args.output)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    storage = opened.resources["storage"]
    current = _made(opened, [args.output])[args.output]
    listing = takes_listing(args.output, storage.takes.records(args.campaign, args.output), current)
    made = sorted({entry["take"] for entry in listing["takes"]})
    if args.take not in made:
        print(f"{args.campaign}: {args.output}: there is no take {args.take}; its takes: "
              f"{', '.join(map(str, made)) or 'none (it is not made yet)'}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sha = opened.resources["briefs"].pin(opened.loaded)
    code = execute_campaign(opened.settings, args.campaign, asset_keys([args.output]), brief_sha256=sha,
                            run_config=run_config_of(args.output, pick_take=args.take))
    if code != EXIT_OK:
        return code
    record = _made(opened, [args.output])[args.output] or {}
    how = ("restored as kept, no model call" if record.get("picked")
           else "made for the brief as it is now (it was made for an earlier request)")
    print(f"{args.campaign}: {args.output} take {args.take} is current: {how}")
    return run_campaign(args.campaign)  # what follows it, exactly as the plan now says


def _named(opened: "Campaign", args, standing: set[str], *, approving: bool) -> tuple[list[str], list[str]]:
    """The outputs an approve/unapprove names (``--all``: every approvable made one, or every approved one) and
    the problems with them."""
    from adchain_assets.plan.requests import outputs_of
    from adchain_assets.plan.review import approvable

    campaign = opened.loaded.campaign
    if args.all and args.outputs:
        return [], [f"{campaign}: name outputs or --all, not both"]
    if not args.all and not args.outputs:
        return [], [f"{campaign}: name the outputs (e.g. reference/scene_2) or --all"]
    names = outputs_of(opened.loaded.brief)
    made = _made(opened, names)
    if args.all:
        if approving:
            return [n for n in names if approvable(n) and made[n] is not None], []
        return [n for n in names if n in standing], []
    problems = []
    for output in dict.fromkeys(args.outputs):
        problem = output_problem(opened, output)
        if problem is None and approving and not approvable(output):
            problem = (f"{campaign}: {output} is a review document, remade from what it shows (approvals"
                       " included); it cannot be approved")
        if problem is None and approving and made[output] is None:
            problem = f"{campaign}: {output} was never made: there is nothing to approve"
        if problem:
            problems.append(problem)
    return list(dict.fromkeys(args.outputs)), problems


def _sign_off_targets(args, approving: bool):
    """The opened campaign, its storage, the approvals standing and the outputs ``args`` name; None (said on
    stderr) when the campaign or an output cannot be signed off."""
    opened = _opened(args.campaign)
    if opened is None:
        return None
    storage = opened.resources["storage"]
    standing = storage.review.read(args.campaign).approvals
    outputs, problems = _named(opened, args, set(standing), approving=approving)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return None
    return opened, storage, standing, outputs


def cmd_approve(args) -> int:
    targets = _sign_off_targets(args, approving=True)
    if targets is None:
        return EXIT_BAD_INPUT
    opened, storage, standing, outputs = targets
    by = _user(args.by)
    made = _made(opened, outputs)
    for output in outputs:
        record = made[output] or {}
        before = standing.get(output)
        if before is not None and before.sha256 == record.get("sha256"):
            print(f"{args.campaign}: {output} already approved (by {before.by} on {before.at})")
            continue
        approval = storage.review.approve(args.campaign, output, by=by, sha256=str(record.get("sha256")),
                                          take=record.get("take"))
        take = "" if approval.take is None else f"take {approval.take}, "
        print(f"{args.campaign}: {output} approved by {by} ({take}sha256 {approval.sha256[:12]})")
    if not outputs:
        print(f"{args.campaign}: nothing made yet: nothing to approve")
    return EXIT_OK


def cmd_unapprove(args) -> int:
    targets = _sign_off_targets(args, approving=False)
    if targets is None:
        return EXIT_BAD_INPUT
    _, storage, _, outputs = targets
    by = _user(args.by)
    for output in outputs:
        withdrawn = storage.review.unapprove(args.campaign, output, by=by)
        if withdrawn is None:
            print(f"{args.campaign}: {output} was not approved")
        else:
            print(f"{args.campaign}: {output} unapproved by {by} (approved by {withdrawn.by} on {withdrawn.at});"
                  " the next run re-makes it if the plan says so")
    if not outputs:
        print(f"{args.campaign}: nothing is approved")
    return EXIT_OK


def regenerate_directed(opened: "Campaign", output: str, note: Optional[str], clear: bool) -> int:
    """``adchain regenerate --note`` / ``--clear-notes``: drop the notes (``clear``), then edit the current take
    with ``note`` (a run of that image), then make what the plan says follows."""
    from adchain_assets.cli.main import run_campaign
    from adchain_assets.cli.runs import execute_campaign
    from adchain_assets.defs.jobs import asset_keys

    campaign = opened.loaded.campaign
    problem = image_problem(opened, output)
    if problem is None and note is not None and not note.strip():
        problem = f"{campaign}: {output}: --note is blank"
    if problem is None and note is not None and _made(opened, [output])[output] is None:
        problem = f"{campaign}: {output} is not made yet: there is nothing to edit (materialize it first)"
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    review = opened.resources["storage"].review
    if clear:
        dropped = review.clear_notes(campaign, output)
        print(f"{campaign}: {output}: " + (f"notes dropped: {'; '.join(dropped)}" if dropped else "no notes in force"))
    if note is not None:
        sha = opened.resources["briefs"].pin(opened.loaded)
        code = execute_campaign(opened.settings, campaign, asset_keys([output]), brief_sha256=sha,
                                run_config=run_config_of(output, note=note.strip()))
        if code != EXIT_OK:
            return code
    return run_campaign(campaign)  # what follows, exactly as the plan now says
