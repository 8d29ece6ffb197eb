"""What an image run may ask beyond making its image, from the launchpad's config (``ImageRunConfig``, or the
sheets step's ``SheetRunConfig`` per subject: :class:`OutputConfig`) or the CLI (``adchain regenerate --note``,
``adchain pick``): a director's note, an earlier take back, a sign-off. Each works on any generated output, an
image of a chain or a subject's sheet.

* ``note``: the next take is the model's edit of the current take (shown first), with the note as the change; the
  note is put in force on the image once the edit is made, and directs every later request of it until cleared.
* ``pick_take``: take N becomes current. When one of its kept pictures answers take N's request as the brief and
  the parents are now, its exact bytes are restored with no model call; otherwise take N is made for the brief as
  it is now (answered by the cache when it was made before). The notes it was made with come back into force.
* ``approve`` / ``unapprove``: the sign-off, recorded under the storage URL with who and when. An approved image
  is never re-made by any run: its step keeps the stored file, logs why, and succeeds without a call, so what
  follows it in the same run is made from the approved bytes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Optional

import dagster as dg

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.defs.resources import Storage
from adchain_assets.defs.steps import now
from adchain_assets.plan.requests import Direction, Maker, Parent, build_request
from adchain_assets.plan.review import Approval, edit_direction, image_direction, recorded_notes
from adchain_assets.store.files import StoredOutput
from adchain_assets.store.takes import without_keeping_fields

UI = "ui"


@dataclass(frozen=True)
class OutputConfig:
    """What a run asks of one output, as ``ImageRunConfig`` says it for an image: the sheets step gives one per
    subject from its own config."""

    new_take: bool = False
    note: str = ""
    pick_take: Optional[int] = None
    approve: bool = False
    unapprove: bool = False
    by: str = ""


def asked(config) -> list[str]:
    """What ``config`` asks beyond making the image, in words."""
    wanted = []
    if config.new_take:
        wanted.append("new_take")
    if config.note:
        wanted.append(f"note {config.note!r}")
    if config.pick_take is not None:
        wanted.append(f"pick_take {config.pick_take}")
    if config.approve:
        wanted.append("approve")
    return wanted


def check_config(config, output: str) -> None:
    """One thing at a time: a note, a new take, a pick and an approval exclude each other (``unapprove`` goes with
    any of them but ``approve``)."""
    wanted = asked(config)
    if len(wanted) > 1:
        raise dg.Failure(description=f"{output}: the run config asks for {' and '.join(wanted)}; ask for one of them",
                         allow_retries=False)
    if config.approve and config.unapprove:
        raise dg.Failure(description=f"{output}: the run config asks to approve and to unapprove", allow_retries=False)
    if config.note and not config.note.strip():
        raise dg.Failure(description=f"{output}: the note is blank", allow_retries=False)


def who(config, context: dg.AssetExecutionContext) -> str:
    return config.by.strip() or f"{UI} (run {context.run.run_id[:8]})"


def sign_off(context: dg.AssetExecutionContext, storage: Storage, campaign: str, output: str,
             config) -> Optional[Approval]:
    """Apply the config's ``approve`` or ``unapprove``; returns the approval standing afterwards (read fresh)."""
    review = storage.review
    if config.unapprove:
        withdrawn = review.unapprove(campaign, output, by=who(config, context))
        context.log.info(f"{output}: " + ("approval withdrawn" if withdrawn else "was not approved"))
    if config.approve:
        stored = storage.files.read_output(campaign, output)
        if stored is None:
            raise dg.Failure(description=f"{output}: nothing to approve: it is not made yet", allow_retries=False)
        approval = review.approve(campaign, output, by=who(config, context), sha256=stored.sha256,
                                  take=stored.provenance.get("take"))
        context.log.info(f"{output}: approved by {approval.by} (take {approval.take}, sha256 {stored.sha256[:12]})")
        return approval
    return review.approval(campaign, output)


def keep_approved(context: dg.AssetExecutionContext, storage: Storage, campaign: str, output: str,
                  approval: Approval, config=None) -> StoredOutput:
    """The stored output of approved ``output``, as it is: no model call, nothing written."""
    stored = storage.files.read_output(campaign, output)
    if stored is None:
        raise dg.Failure(
            description=f"{output}: approved by {approval.by} on {approval.at}, but its file is missing;"
            " unapprove it to let it be made again", allow_retries=False)
    wanted = [w for w in asked(config) if w != "approve"] if config is not None else []
    if wanted:
        context.log.warning(f"{output}: {' and '.join(wanted)} not done: it is approved; unapprove it first")
    context.log.info(f"{output}: approved by {approval.by} on {approval.at}: kept as stored (take"
                     f" {stored.provenance.get('take')}, sha256 {stored.sha256[:12]}); no model call")
    return stored


def approved_result(context: dg.AssetExecutionContext, storage: Storage, campaign: str,
                    output: str) -> Optional[dg.MaterializeResult]:
    """For a clip or the ad: the result of keeping it as stored when it is approved (None when it is not)."""
    approval = storage.review.approval(campaign, output)
    if approval is None:
        return None
    stored = keep_approved(context, storage, campaign, output, approval)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MaterializeResult(
            metadata={"approved": dg.MetadataValue.text(f"by {approval.by} on {approval.at}"),
                      "path": dg.MetadataValue.path(str(storage.files.output_path(campaign, output)))},
            data_version=dg.DataVersion(stored.sha256),
        )


@dataclass(frozen=True)
class Directed:
    """The take an image step makes and how: its number, its direction (notes, an edit), the bytes of the take an
    edit starts from, or a kept take restored as it is; and the notes to put in force once it is made."""

    take: int
    direction: Optional[Direction] = None
    edit_png: Optional[bytes] = None
    restored: Optional[StoredOutput] = None
    notes_after: Optional[tuple[str, ...]] = None
    why: str = ""

    def settle(self, storage: Storage, campaign: str, output: str) -> None:
        """Put the notes this take was made with in force (after it is made: a failed edit leaves them be)."""
        if self.notes_after is None:
            return
        review = storage.review
        if self.direction is not None and self.direction.edit is not None and self.restored is None:
            review.add_note(campaign, output, self.direction.edit.note)
        else:
            review.set_notes(campaign, output, self.notes_after, self.why)


def directed_take(context: dg.AssetExecutionContext, storage: Storage, loaded: LoadedBrief, output: str, config,
                  parents: Mapping[str, Parent], maker: Maker) -> Directed:
    """Which take the step of ``output`` (an image, a subject's sheet) makes, with which direction (see the module
    docstring)."""
    campaign = loaded.campaign
    files, takes = storage.files, storage.takes
    if config.note:
        source = files.read_output(campaign, output)
        if source is None:
            raise dg.Failure(description=f"{output}: nothing to edit: it is not made yet; materialize it first",
                             allow_retries=False)
        note = config.note.strip()
        notes = storage.review.notes(campaign, output)
        notes = notes if note in notes else (*notes, note)
        takes.keep(campaign, output, source)  # the take an edit starts from is one of the takes
        direction = edit_direction(notes, note, source.provenance)
        context.log.info(f"{output}: editing take {direction.edit.take} ({source.sha256[:12]}): {note}")
        return Directed(int(source.provenance.get("take", 0)) + 1, direction, source.data, notes_after=notes)
    if config.pick_take is not None:
        return _picked(context, storage, loaded, output, int(config.pick_take), parents, maker)
    record = files.read_record(campaign, output)
    take = (int(record.get("take", 0)) if record else 0) + (1 if config.new_take else 0)
    notes = storage.review.notes(campaign, output)
    direction = image_direction(output, loaded, parents, record=record, notes=notes, image_maker=maker, take=take)
    if direction is None or direction.edit is None:
        return Directed(take, direction)
    source = takes.read(campaign, output, direction.edit.take, direction.edit.sha256)
    if source is None:  # the edited take is no longer kept: the image is made afresh, with its notes
        context.log.warning(f"{output}: take {direction.edit.take} it was edited from is not kept; made afresh")
        return Directed(take, Direction(notes) if notes else None)
    return Directed(take, direction, source.data)


def _picked(context: dg.AssetExecutionContext, storage: Storage, loaded: LoadedBrief, output: str, take: int,
            parents: Mapping[str, Parent], maker: Maker) -> Directed:
    campaign = loaded.campaign
    kept = storage.takes.records(campaign, output)
    current = storage.files.read_output(campaign, output)
    if current is not None and not any(r.get("sha256") == current.sha256 for r in kept):
        kept.append(dict(current.provenance))  # made before takes were kept
    candidates = [r for r in kept if int(r.get("take", 0)) == take]
    if not candidates:
        made = sorted({int(r.get("take", 0)) for r in kept})
        raise dg.Failure(description=f"{output}: there is no take {take}; its takes: {made or 'none'}",
                         allow_retries=False)
    for record in reversed(candidates):
        notes = recorded_notes(record)
        direction = image_direction(output, loaded, parents, record=record, notes=notes, image_maker=maker, take=take)
        request = build_request(output, loaded, parents, image_maker=maker, take=take, direction=direction)
        if request.fingerprint != record.get("request_sha256"):
            continue
        found = storage.takes.read(campaign, output, take, str(record["sha256"]))
        if found is None and current is not None and current.sha256 == record.get("sha256"):
            found = current
        if found is None:
            continue
        provenance = {**without_keeping_fields(record), "cache_hit": True, "cost_usd": 0.0, "latency_s": 0.0,
                      "created_at": now(), "brief_sha256": loaded.sha256, "picked": True}
        context.log.info(f"{output}: take {take} restored as kept ({found.sha256[:12]}); no model call")
        return Directed(take, direction, restored=StoredOutput(found.data, provenance), notes_after=notes,
                        why=f"picked take {take}")
    basis = candidates[-1]
    notes = recorded_notes(basis)
    direction = image_direction(output, loaded, parents, record=basis, notes=notes, image_maker=maker, take=take)
    context.log.info(f"{output}: take {take} was made for an earlier request (its scene text, a parent or its"
                     " notes changed since): made for the brief as it is now")
    return Directed(take, direction, notes_after=notes, why=f"picked take {take}")
