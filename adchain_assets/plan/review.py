"""Review: the director's notes on an output, its takes, and the client's sign-off, as the plan and the steps
see them. Pure: the store (:mod:`adchain_assets.store.review`, :mod:`adchain_assets.store.takes`) reads and writes
the records; nothing here touches storage.

Works on any output name (``reference/scene_2``, a subject's sheet ``subjects/<id>``): an output is *takeable*
when it is a generated image or sheet, and *approvable* unless it is a review document (the storyboard and the
report are remade from whatever they show, approvals included).

Which request an image's take is (:func:`current_request`): an edit (``adchain regenerate --note``) is a request
that shows the edited take first; the plan and the step rebuild it from the stored provenance's ``edit`` and keep
it while it is still the request the stored image answered. Once anything it depends on changed (its scene text,
a parent, its notes), the image is made afresh, with its notes as direction: an edit is one act on one picture,
while its note stays with the output until it is cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Mapping, Optional, Sequence

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.plan.requests import (
    REPORT,
    STORYBOARD,
    Direction,
    Edit,
    Maker,
    Parent,
    Request,
    build_request,
    kind_of,
    subject_of,
)

APPROVED = "approved"
APPROVED_BUT_MISSING = "approved, but its file is missing; unapprove it to make it again"
REVIEW_DOCUMENTS = (STORYBOARD, REPORT)


@dataclass(frozen=True)
class Approval:
    """A sign-off: who approved which stored bytes of an output, and when."""

    output: str
    by: str
    at: str
    sha256: str
    take: Optional[int] = None

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "approved": True, "by": self.by, "at": self.at, "sha256": self.sha256,
                "take": self.take}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> Optional["Approval"]:
        """The approval a stored record holds; None when it was withdrawn (``approved: false``)."""
        if not record.get("approved"):
            return None
        take = record.get("take")
        return cls(str(record["output"]), str(record.get("by") or ""), str(record.get("at") or ""),
                   str(record.get("sha256") or ""), None if take is None else int(take))


def is_user_image(output: str, loaded: LoadedBrief) -> bool:
    """The brief's own ``reference_image`` or a subject's ``photo`` (as its sheet): used as is."""
    if kind_of(output) == "sheet":
        subject = next((s for s in loaded.brief.subjects if s.id == subject_of(output)), None)
        return subject is not None and bool(subject.photo)
    return output == "reference/scene_1" and bool(loaded.brief.reference_image)


def takeable(output: str, loaded: LoadedBrief) -> bool:
    """A generated image or sheet: it has takes, and notes can direct it (the brief's own reference_image and a
    subject's photo have neither)."""
    return kind_of(output) in ("image", "sheet") and not is_user_image(output, loaded)


def approvable(output: str) -> bool:
    """Every output but the review documents (the storyboard and the report show the approvals)."""
    return output not in REVIEW_DOCUMENTS


def approved_reason(status: str, reason: str = "") -> str:
    """The plan's ``held`` reason of an approved output: ``approved``, and what it would be re-made for
    otherwise (``approved; request changed: parent changed: reference/scene_1``)."""
    if status == "outdated" and reason:
        return f"{APPROVED}; request changed: {reason}"
    return APPROVED


def notes_text(notes: Sequence[str]) -> Optional[str]:
    """The provenance's ``note``: the notes in force, as one text (None when there are none)."""
    return "; ".join(notes) if notes else None


def direction_fields(direction: Optional[Direction]) -> dict[str, Any]:
    """What an image's provenance records of its direction: ``note`` (the notes in force), ``notes`` (each),
    ``edited_from`` (sha256 of the take it edited) and ``edit`` (that take and the change asked)."""
    if direction is None:
        return {"note": None, "edited_from": None}
    fields: dict[str, Any] = {"note": notes_text(direction.notes), "notes": list(direction.notes),
                              "edited_from": None}
    if direction.edit is not None:
        fields["edited_from"] = direction.edit.sha256
        fields["edit"] = direction.edit.to_record()
    return fields


def recorded_notes(record: Optional[Mapping[str, Any]]) -> tuple[str, ...]:
    """The notes in force when the image ``record`` describes was made."""
    if not record:
        return ()
    return tuple(str(note) for note in record.get("notes") or ())


def image_direction(
    output: str,
    loaded: LoadedBrief,
    parents: Mapping[str, Parent],
    *,
    record: Optional[Mapping[str, Any]],
    notes: Sequence[str],
    image_maker: Maker,
    take: int,
) -> Optional[Direction]:
    """The direction of image ``output``'s request now: the ``notes`` in force and, while it still is the request
    the stored ``record`` answered, the edit that record made (see the module docstring)."""
    notes = tuple(notes)
    edit = Edit.from_record((record or {}).get("edit"))
    if edit is not None and int((record or {}).get("take", -1)) == take:
        direction = Direction(notes, edit)
        request = build_request(output, loaded, parents, image_maker=image_maker, take=take, direction=direction)
        if request.fingerprint == (record or {}).get("request_sha256"):
            return direction
    return Direction(notes) if notes else None


def current_request(
    output: str,
    loaded: LoadedBrief,
    parents: Mapping[str, Parent],
    *,
    record: Optional[Mapping[str, Any]] = None,
    notes: Sequence[str] = (),
    approved: Collection[str] = (),
    image_maker: Optional[Maker] = None,
    video_maker: Optional[Maker] = None,
    take: int = 0,
    spend_usd: float = 0.0,
) -> Request:
    """The request ``output`` would be made with now: :func:`build_request` with, for a generated image, its
    :func:`image_direction`; the review outputs mark the ``approved`` outputs. The plan and the steps call this."""
    direction = None
    if takeable(output, loaded):
        assert image_maker is not None, "an image request needs the image model"
        direction = image_direction(output, loaded, parents, record=record, notes=notes, image_maker=image_maker,
                                    take=take)
    return build_request(output, loaded, parents, image_maker=image_maker, video_maker=video_maker, take=take,
                         spend_usd=spend_usd, direction=direction, approved=approved)


def edit_direction(notes: Sequence[str], note: str, source: Mapping[str, Any]) -> Direction:
    """The direction of an edit of the take ``source`` (its provenance) asked by ``note``."""
    edit = Edit(note=note, take=int(source.get("take", 0)), sha256=str(source["sha256"]),
                pixels=str(source.get("pixels_sha256") or source["sha256"]))
    return Direction(tuple(notes), edit)


def take_entry(record: Mapping[str, Any], *, current: bool) -> dict[str, Any]:
    """One line of ``adchain takes --json``: a take (the provenance of an image made for the output)."""
    return {
        "take": int(record.get("take", 0)),
        "sha256": record.get("sha256"),
        "note": record.get("note"),
        "cost_usd": record.get("cost_usd"),
        "created_at": record.get("created_at"),
        "current": current,
        "edited_from": record.get("edited_from"),
        "cache_hit": bool(record.get("cache_hit", False)),
        "request_sha256": record.get("request_sha256"),
        "scores": record.get("consistency"),
        "candidates": record.get("candidates") or [],
    }


def takes_listing(output: str, history: Sequence[Mapping[str, Any]], current: Optional[Mapping[str, Any]]) -> dict:
    """``adchain takes --json``: every take kept for ``output`` (oldest first within each take number) and which
    one is current; the current image is listed even when it was made before takes were kept."""
    records = list(history)
    if current is not None and not any(_same_take(r, current) for r in records):
        records.append(current)
    records.sort(key=lambda r: (int(r.get("take", 0)), str(r.get("kept_at") or r.get("created_at") or "")))
    entries = [take_entry(r, current=current is not None and _same_take(r, current)) for r in records]
    return {"output": output, "current": None if current is None else int(current.get("take", 0)), "takes": entries}


def _same_take(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return int(a.get("take", 0)) == int(b.get("take", 0)) and a.get("sha256") == b.get("sha256")
