"""Prompt composition: pure functions from a brief and an image slot to the text the model reads.

The rule that keeps the same woman in every scene: the text must agree with the reference image. Every
subject in the scene is given by its full description, verbatim, every time; and when reference images are
shown, the prompt says outright that the subjects are the very ones in those images. A prompt uses only its
own scene's text for its own chain, so editing one scene's text changes only that image's request.

A director's note (``adchain regenerate --note``) adds two things. The notes in force on an image are a section of
its prompt, so every later request of that image (a new take, a re-make after its text or a parent changed)
carries them as direction until they are cleared. An edit is the model's edit of the current take: that image is
attached first, the prompt opens with the change to make and asks to keep everything else (the phrasing of
Google's image-editing guide), and the other references are numbered after it. Without notes the text is exactly
what it was before notes existed, so no stored request changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from adchain_assets.brief.model import Brief
from adchain_assets.plan.references import Slot

_PURPOSE = {
    "reference": "Reference image for scene {k} of an advertising campaign",
    "start": "First frame of the video clip of scene {k} of an advertising campaign",
    "end": "Last frame of the video clip of scene {k} of an advertising campaign",
}
_ROLE = {"reference": "reference image", "start": "start frame", "end": "end frame"}
_KEEP = {
    "product": "same shape, proportions, cap, label, engraving, material and colours",
    "character": "same face, age, build, hair, eyes, skin and marks",
}


@dataclass(frozen=True)
class SubjectLine:
    id: str
    kind: str
    description: str


@dataclass(frozen=True)
class ComposedPrompt:
    """A prompt in parts, so a renderer can lay them out; :attr:`text` is what a model is sent."""

    slot: Slot
    scene_text: str
    subjects: tuple[SubjectLine, ...]
    look: tuple[tuple[str, str], ...]
    continuity: str
    reference_note: str
    notes: tuple[str, ...] = ()  # the director's notes in force on this image
    edit: str = ""  # the change an edit makes to the current take (attached first); empty: not an edit

    @property
    def purpose(self) -> str:
        return _PURPOSE[self.slot.chain].format(k=self.slot.scene)

    @property
    def text(self) -> str:
        opening = [edit_instruction(self.slot, self.edit)] if self.edit else []
        return "\n\n".join([*opening, f"{self.purpose}: {self.scene_text.strip()}", *self.context_sections()])

    def context_sections(self) -> list[str]:
        """Everything after the scene text: subjects, look, continuity and the reference note."""
        parts = []
        if self.subjects:
            lines = "\n".join(f"- {s.id} ({s.kind}): {s.description}" for s in self.subjects)
            parts.append(f"Subjects in this image, each exactly as described:\n{lines}")
        if self.look:
            parts.append("Look: " + "; ".join(f"{label}: {value.strip()}" for label, value in self.look) + ".")
        if self.continuity.strip():
            parts.append(f"Continuity: {self.continuity.strip()}")
        if self.notes:
            lines = "\n".join(f"- {note}" for note in self.notes)
            parts.append(f"Director's notes on this image, to follow:\n{lines}")
        if self.reference_note:
            parts.append(self.reference_note)
        return parts


def describe_reference(slot: Slot) -> str:
    """``start/scene_2`` -> ``the start frame of scene 2``."""
    return f"the {_ROLE[slot.chain]} of scene {slot.scene}"


def edit_instruction(slot: Slot, change: str) -> str:
    """The opening of an edit's prompt: the change to make to the image attached first, keeping the rest."""
    role = _ROLE[slot.chain]
    return (
        f"Edit the first attached image, the current take of this {role}: {change.strip()}. Change only what"
        " this asks for and keep everything else in that image as it is: the same subjects, framing,"
        " composition, background, lighting and colours."
    )


def reference_note(brief: Brief, slot: Slot, references: Sequence[Slot], *, edited: bool = False) -> str:
    """The instruction that ties the text to the reference images; empty when there are none. ``edited``: the
    current take of this image is attached first (an edit), and the references are numbered after it."""
    if not references and not edited:
        return ""
    listed = [f"the current take of this {_ROLE[slot.chain]}, to edit"] if edited else []
    listed += [describe_reference(r) for r in references]
    listing = " ".join(f"Image {i}: {what}." for i, what in enumerate(listed, start=1))
    sentences = [f"Reference images, in the order attached. {listing}"]
    if not references:
        return " ".join(sentences)
    plural = len(references) > 1
    images = "the reference images" if plural else "the reference image"
    shown = {subject for ref in references for subject in brief.scene(ref.scene).subjects}
    for subject_id in brief.scene(slot.scene).subjects:
        subject = brief.subject(subject_id)
        if subject_id in shown:
            sentences.append(
                f"The {subject_id} is the exact same {subject.kind} shown in {images}: keep the"
                f" {_KEEP[subject.kind]} identical to {images} and to the description above."
            )
        else:
            sentences.append(
                f"The {subject_id} does not appear in {images}; show the {subject_id} exactly as described"
                f" above, in the same visual world."
            )
    sentences.append(
        f"Keep the style, colour palette and lighting consistent with {images}; change only what this"
        f" {_ROLE[slot.chain]}'s text asks for."
    )
    return " ".join(sentences)


def compose_prompt(brief: Brief, slot: Slot, references: Sequence[Slot], *, notes: Sequence[str] = (),
                   edit: str = "") -> ComposedPrompt:
    """The full prompt of ``slot``, given the reference images the model will be shown, the director's ``notes``
    in force on it and, for an edit of its current take (attached before the references), the change ``edit``."""
    scene = brief.scene(slot.scene)
    return ComposedPrompt(
        slot=slot,
        scene_text=scene.text_for(slot.chain),
        subjects=tuple(
            SubjectLine(s.id, s.kind, s.description) for s in map(brief.subject, scene.subjects)
        ),
        look=tuple(brief.look.markers()),
        continuity=scene.continuity,
        reference_note=reference_note(brief, slot, references, edited=bool(edit)),
        notes=tuple(notes),
        edit=edit,
    )


def compose_clip_prompt(brief: Brief, scene_number: int) -> str:
    """The text of scene k's clip: how it moves from its start frame to its end frame, with the same subject
    descriptions and look as the frames (the frames themselves are given as the first and last frame)."""
    scene = brief.scene(scene_number)
    opening, ending = scene.start.strip().rstrip("."), scene.end.strip().rstrip(".")
    parts = [f"Video clip of scene {scene_number} of an advertising campaign. It opens on: {opening}. It ends on: {ending}."]
    parts += compose_prompt(brief, Slot("start", scene_number), []).context_sections()
    parts.append("Keep every subject identical to the first and last frame; smooth, natural motion.")
    return "\n\n".join(parts)
