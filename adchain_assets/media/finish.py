"""The finished ad: the rough cut of :mod:`adchain_assets.media.ad` with the brand's finish.

A :class:`Finish` is everything the brief asks of it beyond the cut, as bytes and parameters: each scene's caption
(and the faces to keep it off), the logo bug, the end card, the music and whether the clips' own sound is kept, and
the shape's safe area. :func:`finish_ad` lays the supers over each clip's frames as it is decoded, cross-fades the
end card in after the last scene, mixes and normalises the sound and writes the captions as SRT cues, one per
caption, from the middle of the cross-fade into its scene to the middle of the cross-fade out of it.

:func:`finish_problems` is the brief check of what only the finish can tell: a caption or an end-card text that
does not fit its place at the smallest size allowed, or a character the font cannot draw. It lays the texts out on
a frame of the brief's shape whose shorter side is 1080 pixels (every size is a fraction of that side, so the
verdict holds at any resolution up to a pixel's rounding, which the renderers absorb by shrinking further).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from adchain_assets.brief.model import BriefProblem, LoadedBrief
from adchain_assets.media.ad import AdInfo, assemble_ad
from adchain_assets.media.endcard import EndCard, end_card_problems, render_end_card
from adchain_assets.media.layout import font_key, missing_glyphs, reference_size, safe_area
from adchain_assets.media.mp4 import probe
from adchain_assets.media.sound import ClipSound, add_sound
from adchain_assets.media.supers import FaceBox, Overlay, apply_all, caption_setting, render_caption, render_logo_bug
from adchain_assets.media.supers import srt as srt_text

BUG_GAP = 0.02  # of the frame's height, between the logo bug and a caption at the top


@dataclass(frozen=True)
class Finish:
    """What is added to the cut. ``captions`` and ``faces`` have one entry per clip."""

    aspect_ratio: str
    captions: Sequence[str] = ()
    faces: Sequence[Sequence[FaceBox]] = ()
    font: Optional[bytes] = None
    end_card: Optional[EndCard] = None
    end_card_s: float = 2.5
    logo_bug: Optional[bytes] = None  # the logo's PNG, when it goes on every scene
    music: Optional[bytes] = None
    clip_audio: bool = False


@dataclass
class FinishedAd:
    mp4: bytes
    info: AdInfo
    srt: str  # "" without captions
    loudness: Optional[dict]  # None for a silent ad
    captions: list[Optional[dict]] = field(default_factory=list)  # where each caption went (None: no caption)


def _captions_of(finish: Finish, count: int) -> list[str]:
    return [(list(finish.captions) + [""] * count)[index].strip() for index in range(count)]


def finish_ad(clips: Sequence[bytes], finish: Finish, *, crossfade_s: float, title: Optional[str],
              title_s: float = 1.5) -> FinishedAd:
    """The finished ad of ``clips``."""
    safe = safe_area(finish.aspect_ratio)
    key = font_key(finish.font)
    captions = _captions_of(finish, len(clips))
    faces = [(list(finish.faces) + [()] * len(clips))[index] for index in range(len(clips))]
    placed: list[Optional[dict]] = [None] * len(clips)

    def decorate(index: int, size: tuple[int, int]):
        overlays: list[Overlay] = []
        reserved = 0
        if finish.logo_bug is not None:
            bug = render_logo_bug(finish.logo_bug, size, safe)
            overlays.append(bug)
            reserved = bug.rgba.shape[0] + round(size[1] * BUG_GAP)
        if captions[index]:
            caption = render_caption(captions[index], key, size, safe, faces[index], reserved_top=reserved)
            if caption is not None:
                overlays.append(caption.overlay)
                placed[index] = caption.describe()
        if not overlays:
            return None
        return lambda frame: apply_all(frame, overlays)

    card = finish.end_card
    mp4, info = assemble_ad(
        clips, crossfade_s=crossfade_s, title=title, title_s=title_s, decorate=decorate,
        end_card=(lambda size: render_end_card(card, size, safe)) if card is not None else None,
        end_card_s=finish.end_card_s if card is not None else 0.0,
    )
    half = info.crossfade_s / 2
    last = len(clips) - 1
    cues = []
    for index, text in enumerate(captions):
        if not text:
            continue
        start = info.clip_starts_s[index] + (half if index > 0 or info.title_s else 0.0)
        end = info.clip_starts_s[index] + info.clip_lengths_s[index] - (half if index < last or card else 0.0)
        cues.append((start, end, text))
    sounds = []
    if finish.clip_audio:
        for index, clip in enumerate(clips):
            if not probe(clip).audio:
                continue
            sounds.append(ClipSound(
                clip, info.clip_starts_s[index], info.clip_lengths_s[index],
                fade_in_s=info.crossfade_s if index > 0 or info.title_s else 0.0,
                fade_out_s=info.crossfade_s if index < last or card else 0.0,
            ))
    mp4, loudness = add_sound(mp4, info.duration_s, finish.music, sounds)
    return FinishedAd(mp4, info, srt_text(cues), loudness, placed)


def finish_problems(loaded: LoadedBrief) -> list[BriefProblem]:
    """The brief's captions and end-card texts that cannot be set in their place at the smallest size allowed, or
    that the font cannot draw; each names the field."""
    brief = loaded.brief
    brand = brief.brand
    file = str(loaded.path)
    font = None
    if brand is not None and brand.font:
        font = loaded.resolve(brand.font).read_bytes()
    key = font_key(font)
    size = reference_size(brief.aspect_ratio)
    safe = safe_area(brief.aspect_ratio)
    problems: list[BriefProblem] = []

    def glyphs(field: str, text: str) -> bool:
        missing = missing_glyphs(text, key)
        if missing:
            which = "the brief's font" if font is not None else "the default font (DejaVu Sans Bold)"
            shown = " ".join(f"{char!r} (U+{ord(char):04X})" for char in missing[:5])
            problems.append(BriefProblem(file, field, f"{which} cannot draw {shown}; use another font or other text"))
        return not missing

    for index, scene in enumerate(brief.scenes):
        text = scene.caption.strip()
        if not text or not glyphs(f"scenes[{index}].caption", text):
            continue
        if caption_setting(text, key, size, safe) is None:
            problems.append(BriefProblem(file, f"scenes[{index}].caption", (
                f"is too long to fit the {brief.aspect_ratio} safe area as a caption, at most 3 lines at the"
                " smallest size (4% of the frame's shorter side); shorten it")))
    if brand is not None:
        for name in ("cta", "url", "legal"):
            text = getattr(brand, name).strip()
            if text:
                glyphs(f"brand.{name}", text)
        card = EndCard(cta=brand.cta, url=brand.url, legal=brand.legal, font_key=key)
        problems += [BriefProblem(file, f"brand.{name}", reason) for name, reason in end_card_problems(card, size, safe)
                     if not any(p.field == f"brand.{name}" for p in problems)]
    return problems


def end_card_frame(card: EndCard, aspect_ratio: str, size: tuple[int, int]) -> np.ndarray:
    """The end card as :func:`finish_ad` renders it for an ad of ``size``."""
    return render_end_card(card, size, safe_area(aspect_ratio))
