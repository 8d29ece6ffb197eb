"""Prompt composition: pure functions from a brief and an image slot (or a subject's sheet) to the text the
model reads.

The rule that keeps the same woman in every scene: the text must agree with the reference image. Every
subject in the scene is given by its full description, verbatim, every time; and when reference images are
shown, the prompt says outright which image shows what ("image 2 shows the woman") and that the subjects are
the very ones in those images. A prompt uses only its own scene's text for its own chain, so editing one
scene's text changes only that image's request. A subject's sheet (``sheets`` mode) is asked for from its
description and the brief's look alone: a clean portrait with two views for a character, a packshot for a
product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from adchain_assets.brief.model import Brief, Subject
from adchain_assets.plan.references import Slot, sheet_output

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
_SHEET_PURPOSE = {
    "character": "Character reference sheet for an advertising campaign",
    "product": "Product packshot for an advertising campaign",
}
_SHEET_WHAT = {"character": "character reference sheet", "product": "product packshot"}
# What each kind of sheet shows; a character sheet has two views of the one person (its check counts the faces).
SHEET_VIEWS = {"character": 2, "product": 1}
SHEET_ASPECT_RATIOS = {"character": "3:2", "product": "1:1"}
_SHEET_TEXT = {
    "character": (
        "A clean reference sheet of this one person: a front view and a three-quarter view side by side, head to"
        " waist, neutral expression, even soft studio light, plain light-grey background, the same outfit in both"
        " views; no text, no logos, no other people."
    ),
    "product": (
        "A packshot of this one product: front view, centred, on a seamless white background, soft even light,"
        " every label and marking legible and exactly as described; no text beyond the product's own, no other"
        " objects."
    ),
}


@dataclass(frozen=True)
class SubjectLine:
    id: str
    kind: str
    description: str


@dataclass(frozen=True)
class ComposedPrompt:
    """A prompt in parts, so a renderer can lay them out; :attr:`text` is what a model is sent. ``slot`` is the
    image it makes; a subject's sheet has none, and names the subject in ``sheet`` instead."""

    slot: Optional[Slot]
    scene_text: str
    subjects: tuple[SubjectLine, ...]
    look: tuple[tuple[str, str], ...]
    continuity: str
    reference_note: str
    sheet: Optional[str] = None

    @property
    def title(self) -> str:
        """The output it makes: ``reference/scene_2``, ``subjects/woman``."""
        return self.slot.key if self.slot is not None else sheet_output(self.sheet or "")

    @property
    def purpose(self) -> str:
        if self.slot is None:
            return _SHEET_PURPOSE["character" if self.subjects and self.subjects[0].kind == "character" else "product"]
        return _PURPOSE[self.slot.chain].format(k=self.slot.scene)

    @property
    def text(self) -> str:
        return "\n\n".join([f"{self.purpose}: {self.scene_text.strip()}", *self.context_sections()])

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
        if self.reference_note:
            parts.append(self.reference_note)
        return parts


def describe_reference(slot: Slot) -> str:
    """``start/scene_2`` -> ``the start frame of scene 2``."""
    return f"the {_ROLE[slot.chain]} of scene {slot.scene}"


def reference_note(brief: Brief, slot: Slot, references: Sequence[Slot], sheets: Sequence[str] = ()) -> str:
    """The instruction that ties the text to the reference images, naming what each one shows; empty when there
    are none. ``references`` are earlier images of the campaign, ``sheets`` the subjects whose sheets follow them."""
    if not references and not sheets:
        return ""
    count = len(references) + len(sheets)
    images = "the reference images" if count > 1 else "the reference image"
    listing = [f"Image {i}: {describe_reference(r)}" + (" (the previous shot)" if sheets else "") + "."
               for i, r in enumerate(references, start=1)]
    sheet_image = {}
    for i, subject_id in enumerate(sheets, start=len(references) + 1):
        subject = brief.subject(subject_id)
        sheet_image[subject_id] = i
        listing.append(f"Image {i}: the {subject_id} ({'photo' if subject.photo else _SHEET_WHAT[subject.kind]}).")
    shown = {subject for ref in references for subject in brief.scene(ref.scene).subjects}
    sentences = [f"Reference images, in the order attached. {' '.join(listing)}"]
    for subject_id in brief.scene(slot.scene).subjects:
        subject = brief.subject(subject_id)
        if subject_id in sheet_image:
            image = f"image {sheet_image[subject_id]}"
            sentences.append(
                f"The {subject_id} is the exact same {subject.kind} shown in {image}: keep the"
                f" {_KEEP[subject.kind]} identical to {image} and to the description above."
            )
        elif subject_id in shown:
            sentences.append(
                f"The {subject_id} is the exact same {subject.kind} shown in {images}: keep the"
                f" {_KEEP[subject.kind]} identical to {images} and to the description above."
            )
        else:
            sentences.append(
                f"The {subject_id} does not appear in {images}; show the {subject_id} exactly as described"
                f" above, in the same visual world."
            )
    if references:
        scene_images = "image 1" if sheets and len(references) == 1 else images
        sentences.append(
            f"Keep the style, colour palette and lighting consistent with {scene_images}; change only what this"
            f" {_ROLE[slot.chain]}'s text asks for."
        )
    else:
        sentences.append(f"Set the scene as this {_ROLE[slot.chain]}'s text asks, in the look described above.")
    return " ".join(sentences)


def compose_prompt(brief: Brief, slot: Slot, references: Sequence[Slot], sheets: Sequence[str] = ()) -> ComposedPrompt:
    """The full prompt of ``slot``, given the images the model will be shown: earlier images of the campaign,
    then the sheets of the subjects ``sheets`` names."""
    scene = brief.scene(slot.scene)
    return ComposedPrompt(
        slot=slot,
        scene_text=scene.text_for(slot.chain),
        subjects=tuple(
            SubjectLine(s.id, s.kind, s.description) for s in map(brief.subject, scene.subjects)
        ),
        look=tuple(brief.look.markers()),
        continuity=scene.continuity,
        reference_note=reference_note(brief, slot, references, sheets),
    )


def compose_sheet_prompt(brief: Brief, subject: Subject) -> ComposedPrompt:
    """The prompt of a subject's sheet: what kind of sheet, the subject's full description, the brief's look."""
    return ComposedPrompt(
        slot=None,
        scene_text=f"{subject.id}: {_SHEET_TEXT[subject.kind]}",
        subjects=(SubjectLine(subject.id, subject.kind, subject.description),),
        look=tuple(brief.look.markers()),
        continuity="",
        reference_note="",
        sheet=subject.id,
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
