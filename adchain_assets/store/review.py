"""The review records of a campaign: the director's notes on each output and the client's approvals, under the
storage URL so that every process (the CLI, the sensor, the stack's workers) reads the same.

``<storage>/campaigns/<campaign>/review/notes/<output>.json`` holds the notes in force on ``<output>``
(``reference/scene_2``, any output name) and ``review/approvals/<output>.json`` its sign-off: who approved which
bytes (sha256, take) and when. Each record also keeps its history (notes added, cleared or set by a pick;
approvals given and withdrawn): nothing is ever deleted, a withdrawn approval is ``"approved": false``.

One file per output, written atomically (temporary file, then rename): a reader sees the old record or the new
one, and two outputs are never read-modify-written together. Two writers of the same output's record at the same
instant (the same person approving twice) keep the later one. :meth:`ReviewStore.read` gets a whole campaign's
records with one listing and one batch of reads (two requests on an object store), as the plan needs them on
every sensor tick.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

from upath import UPath

from adchain_assets.plan.review import Approval
from adchain_assets.store.files import files_below, read_below, uncached, write_atomically

logger = logging.getLogger(__name__)

NOTES, APPROVALS = "notes", "approvals"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Review:
    """A campaign's review records: the notes in force on each output and the standing approvals."""

    notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    approvals: dict[str, Approval] = field(default_factory=dict)


class ReviewStore:
    """Notes and approvals under ``<storage>/campaigns/<campaign>/review/``."""

    def __init__(self, storage_url: str):
        self.base = UPath(str(storage_url))

    def folder(self, campaign: str) -> UPath:
        return self.base / "campaigns" / campaign / "review"

    def _path(self, campaign: str, kind: str, output: str) -> UPath:
        return self.folder(campaign) / kind / f"{output}.json"

    def _load(self, campaign: str, kind: str, output: str) -> dict[str, Any]:
        path = self._path(campaign, kind, output)
        uncached(path.parent)  # another process may have written it since this one listed the folder
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as error:  # written atomically: unreadable means damaged, not half-written
            raise ValueError(f"{path} is not readable JSON ({error}); fix or remove it") from None
        return record if isinstance(record, dict) else {}

    def _save(self, campaign: str, kind: str, output: str, record: dict[str, Any]) -> None:
        text = json.dumps(record, indent=2).encode() + b"\n"
        write_atomically(self._path(campaign, kind, output), text)

    def read(self, campaign: str) -> Review:
        """Every output's notes and approval: one listing, one batch of reads."""
        folder = self.folder(campaign)
        names = [name for name in files_below(folder) if name.endswith(".json") and "/." not in f"/{name}"]
        review = Review()
        for name, text in read_below(folder, names).items():
            kind, _, rest = name.partition("/")
            output = rest[: -len(".json")]
            try:
                record = json.loads(text)
            except ValueError as error:
                logger.warning("review record %s cannot be read (%s); left alone", folder / name, error)
                continue
            if kind == NOTES and record.get("notes"):
                review.notes[output] = tuple(str(note) for note in record["notes"])
            elif kind == APPROVALS:
                approval = Approval.from_json({**record, "output": output})
                if approval is not None:
                    review.approvals[output] = approval
        return review

    # --- notes ------------------------------------------------------------------------------------------

    def notes(self, campaign: str, output: str) -> tuple[str, ...]:
        return tuple(str(note) for note in self._load(campaign, NOTES, output).get("notes") or ())

    def add_note(self, campaign: str, output: str, note: str) -> tuple[str, ...]:
        """Put ``note`` in force on ``output`` (after the ones already in force; a note already in force is not
        repeated, so a retried step adds it once); returns the notes in force."""
        record = self._load(campaign, NOTES, output)
        notes = [str(n) for n in record.get("notes") or ()]
        if note in notes:
            return tuple(notes)
        notes.append(note)
        return self._write_notes(campaign, output, record, notes, {"added": note})

    def clear_notes(self, campaign: str, output: str) -> tuple[str, ...]:
        """Drop every note in force on ``output`` (the history keeps them); returns the notes dropped."""
        record = self._load(campaign, NOTES, output)
        dropped = tuple(str(n) for n in record.get("notes") or ())
        if dropped:
            self._write_notes(campaign, output, record, [], {"cleared": list(dropped)})
        return dropped

    def set_notes(self, campaign: str, output: str, notes: Sequence[str], why: str) -> tuple[str, ...]:
        """Make ``notes`` the ones in force (a picked take brings back the notes it was made with)."""
        record = self._load(campaign, NOTES, output)
        if [str(n) for n in record.get("notes") or ()] == list(notes):
            return tuple(notes)
        return self._write_notes(campaign, output, record, list(notes), {"set": list(notes), "why": why})

    def _write_notes(self, campaign: str, output: str, record: dict, notes: list[str], event: dict) -> tuple[str, ...]:
        history = list(record.get("history") or []) + [{"at": now(), **event}]
        self._save(campaign, NOTES, output, {"output": output, "notes": notes, "history": history})
        return tuple(notes)

    # --- approvals --------------------------------------------------------------------------------------

    def approval(self, campaign: str, output: str) -> Optional[Approval]:
        """The standing approval of ``output``, read fresh (a step asks just before it would make it)."""
        record = self._load(campaign, APPROVALS, output)
        return Approval.from_json({**record, "output": output}) if record else None

    def approve(self, campaign: str, output: str, *, by: str, sha256: str, take: Optional[int]) -> Approval:
        approval = Approval(output, by, now(), sha256, take)
        record = self._load(campaign, APPROVALS, output)
        history = list(record.get("history") or []) + [approval.to_json()]
        self._save(campaign, APPROVALS, output, {**approval.to_json(), "history": history})
        return approval

    def unapprove(self, campaign: str, output: str, *, by: str) -> Optional[Approval]:
        """Withdraw the approval of ``output``; returns the one withdrawn (None: it was not approved)."""
        record = self._load(campaign, APPROVALS, output)
        standing = Approval.from_json({**record, "output": output}) if record else None
        if standing is None:
            return None
        event = {"output": output, "approved": False, "by": by, "at": now()}
        self._save(campaign, APPROVALS, output, {**event, "history": list(record.get("history") or []) + [event]})
        return standing
