"""The storyboard as a PDF people can annotate: a cover, then one page per scene, numbered.

The cover has the title, the campaign, the brief's sha256, the spend so far, the subjects (each with its sheet or
photo where there is one, and its description), and the brand (the end card as the ad shows it, the call to
action, address and legal line, the colours) and the music. A scene's page has its reference image, start frame
and end frame side by side, each with its take, what made it, its consistency scores, its notes and whether it is
approved (where its provenance records them), then the scene's texts: reference, start, end, continuity, caption.

Pages are A4 portrait at 150 dpi, drawn with Pillow and saved as a multi-page PDF of JPEG pictures (quality 85):
the text is in the pictures, so a reader can annotate a page but not select or search its words. Texts are set in
the brief's font or the shipped DejaVu Sans; a scene's texts that do not fit the page at 15 px are cut with an
ellipsis (the brief caps each text at 2000 characters, so this needs texts far longer than any scene's). A
four-scene campaign's PDF is about 1 MB and takes about 1 s to render.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

from adchain_assets.brief.model import Brief
from adchain_assets.media.endcard import EndCard, render_end_card
from adchain_assets.media.layout import font_at, font_key, safe_area
from adchain_assets.media.storyboard import score_text
from adchain_assets.plan.references import CHAINS

PAGE = (1240, 1754)  # A4 at 150 dpi
DPI = 150
MARGIN = 80
INK = (30, 30, 30)
MUTED = (110, 110, 110)
RULE = (210, 206, 200)
EMPTY = (226, 222, 216)
APPROVED = (30, 120, 60)


@dataclass
class PdfCell:
    """A stored image on a scene's page: its PNG and provenance (None: not made)."""

    data: bytes
    provenance: Mapping[str, Any]


@dataclass
class StoryboardDocument:
    brief: Brief
    campaign: str
    brief_sha256: str
    spend_usd: float
    rows: Sequence[Mapping[str, Optional[PdfCell]]]  # per scene: chain -> image
    subject_images: Mapping[str, bytes] = field(default_factory=dict)  # subject id -> its sheet or photo
    logo: Optional[bytes] = None
    font: Optional[bytes] = None


class _Page:
    def __init__(self, key: str):
        self.image = Image.new("RGB", PAGE, (255, 255, 255))
        self.draw = ImageDraw.Draw(self.image)
        self.key = key
        self.y = MARGIN

    def font(self, px: int) -> ImageFont.FreeTypeFont:
        return font_at(self.key, px)

    def lines(self, text: str, px: int, width: int) -> list[str]:
        """``text`` wrapped to ``width`` (a word longer than a line is broken)."""
        font = self.font(px)
        lines: list[str] = []
        for paragraph in text.splitlines() or [""]:
            current = ""
            for word in paragraph.split():
                while font.getlength(word) > width:  # break a word that is wider than a line
                    cut = max(1, int(len(word) * width / font.getlength(word)) - 1)
                    if current:
                        lines.append(current)
                        current = ""
                    lines.append(word[:cut])
                    word = word[cut:]
                candidate = f"{current} {word}".strip()
                if font.getlength(candidate) <= width:
                    current = candidate
                else:
                    lines.append(current)
                    current = word
            lines.append(current)
        return lines

    def text(self, text: str, px: int, x: int, width: int, fill=INK, max_lines: Optional[int] = None,
             y: Optional[int] = None) -> int:
        """Draws wrapped ``text`` at (x, y or the page's cursor); returns the y under it (and moves the cursor when
        ``y`` is None)."""
        lines = self.lines(text, px, width)
        if max_lines is not None and len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = lines[-1].rstrip() + " \u2026"
        top = self.y if y is None else y
        step = round(px * 1.3)
        for index, line in enumerate(lines):
            self.draw.text((x, top + index * step), line, font=self.font(px), fill=fill)
        bottom = top + len(lines) * step
        if y is None:
            self.y = bottom
        return bottom

    def rule(self, gap: int = 18) -> None:
        self.y += gap
        self.draw.line((MARGIN, self.y, PAGE[0] - MARGIN, self.y), fill=RULE, width=2)
        self.y += gap

    def footer(self, number: int, total: int, campaign: str) -> None:
        font = self.font(18)
        self.draw.text((MARGIN, PAGE[1] - MARGIN / 2), campaign, font=font, fill=MUTED, anchor="ls")
        self.draw.text((PAGE[0] - MARGIN, PAGE[1] - MARGIN / 2), f"page {number} of {total}", font=font,
                       fill=MUTED, anchor="rs")


def _picture(png: bytes, box: tuple[int, int]) -> Image.Image:
    with Image.open(io.BytesIO(png)) as opened:
        picture = opened.convert("RGBA") if opened.has_transparency_data else opened.convert("RGB")
    picture.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=2.0)
    if picture.mode == "RGB":
        return picture
    flat = Image.new("RGB", picture.size, (255, 255, 255))
    flat.paste(picture, (0, 0), picture)
    return flat


def _cover(doc: StoryboardDocument, page: _Page) -> None:
    brief = doc.brief
    width = PAGE[0] - 2 * MARGIN
    page.text(brief.title or doc.campaign, 46, MARGIN, width, max_lines=3)
    page.y += 8
    page.text(f"Campaign {doc.campaign}  \u00b7  brief {doc.brief_sha256[:12]}  \u00b7  {len(brief.scenes)} scenes"
              f"  \u00b7  {brief.aspect_ratio}", 22, MARGIN, width, fill=MUTED)
    page.text(f"Spend so far: ${doc.spend_usd:.4f} (every paid model call of the campaign, from the ledger)", 22,
              MARGIN, width, fill=MUTED)
    page.rule()
    page.text("Subjects", 30, MARGIN, width)
    page.y += 6
    brand_height = 520 if brief.brand is not None else 120
    room = PAGE[1] - MARGIN * 2 - page.y - brand_height
    row = max(110, min(230, room // max(1, len(brief.subjects)))) if brief.subjects else 0
    if not brief.subjects:
        page.text("none", 22, MARGIN, width, fill=MUTED)
    for subject in brief.subjects:
        if page.y + row > PAGE[1] - MARGIN - brand_height:
            page.text("(more subjects than fit this page)", 20, MARGIN, width, fill=MUTED)
            break
        thumb = row - 20
        png = doc.subject_images.get(subject.id)
        if png is not None:
            picture = _picture(png, (thumb, thumb))
            page.image.paste(picture, (MARGIN, page.y))
        else:
            page.draw.rectangle((MARGIN, page.y, MARGIN + thumb, page.y + thumb), fill=EMPTY)
            page.draw.text((MARGIN + thumb / 2, page.y + thumb / 2), "no photo", font=page.font(18), fill=MUTED,
                           anchor="mm")
        x = MARGIN + thumb + 24
        top = page.y
        after = page.text(f"{subject.id} ({subject.kind})", 24, x, width - thumb - 24, y=top)
        page.text(subject.description, 19, x, width - thumb - 24, fill=INK, max_lines=max(1, (thumb - 34) // 25),
                  y=after + 4)
        page.y = top + row
    page.rule()
    brand = brief.brand
    page.text("Brand and sound", 30, MARGIN, width)
    page.y += 6
    music = f"Music: {brief.music}" if brief.music else "Music: none"
    audio = "the clips' own sound is kept" if brief.video.audio else "the clips' own sound is not used"
    if brand is None:
        page.text(f"No brand block: the ad ends on the last scene. {music}; {audio}.", 22, MARGIN, width, fill=MUTED)
        return
    card = EndCard(brand.cta, brand.url, brand.legal, tuple(brand.colors), doc.logo, font_key(doc.font))
    ratio_w, ratio_h = (int(part) for part in brief.aspect_ratio.split(":"))
    box = 420
    size = (round(box * ratio_w / max(ratio_w, ratio_h) / 2) * 2, round(box * ratio_h / max(ratio_w, ratio_h) / 2) * 2)
    top = page.y
    if brand.has_end_card():
        frame = Image.fromarray(render_end_card(card, size, safe_area(brief.aspect_ratio)))
        page.image.paste(frame, (MARGIN, top))
        page.draw.rectangle((MARGIN, top, MARGIN + size[0] - 1, top + size[1] - 1), outline=RULE, width=2)
        x = MARGIN + size[0] + 30
    else:
        x = MARGIN
    text_width = PAGE[0] - MARGIN - x
    lines = [
        ("End card" if brand.has_end_card() else "No end card", 24, INK),
        (f"Call to action: {brand.cta or '-'}", 20, INK),
        (f"Address: {brand.url or '-'}", 20, INK),
        (f"Legal: {brand.legal or '-'}", 18, MUTED),
        (f"Held {brand.end_card_s:g} s after a cross-fade from the last scene", 18, MUTED),
        (f"Logo on every scene: {'yes' if brand.logo_bug else 'no'}", 18, MUTED),
        (f"{music}; {audio}", 18, MUTED),
    ]
    y = top
    for text, px, fill in lines:
        y = page.text(text, px, x, text_width, fill=fill, max_lines=6, y=y) + 6
    swatch_y = y + 6
    for index, colour in enumerate(brand.colors):
        left = x + index * 70
        page.draw.rectangle((left, swatch_y, left + 56, swatch_y + 40), fill=colour, outline=RULE, width=2)
        page.draw.text((left, swatch_y + 46), colour, font=page.font(14), fill=MUTED)
    page.y = max(top + size[1], swatch_y + 70)


def _cell_lines(record: Mapping[str, Any]) -> list[tuple[str, tuple[int, int, int]]]:
    lines = [(f"take {record.get('take', 0)}  \u00b7  {record.get('backend', '')} {record.get('model', '')}", INK)]
    scores = score_text(record.get("consistency") or {})
    lines.append((scores or "no subjects scored", MUTED))
    notes = record.get("note")
    if notes:
        text = "; ".join(notes) if isinstance(notes, (list, tuple)) else str(notes)
        lines.append((f"note: {text}", INK))
    approved = record.get("approved")
    if approved is not None:
        who = record.get("approved_by")
        lines.append(("approved" + (f" by {who}" if who else "") if approved else "not approved",
                      APPROVED if approved else MUTED))
    return lines


def _scene(doc: StoryboardDocument, page: _Page, number: int) -> None:
    brief = doc.brief
    scene = brief.scene(number)
    width = PAGE[0] - 2 * MARGIN
    subjects = ", ".join(scene.subjects) or "no subjects"
    page.text(f"Scene {number} of {len(brief.scenes)}", 38, MARGIN, width)
    page.text(f"{scene.duration_s:g} s  \u00b7  {subjects}", 22, MARGIN, width, fill=MUTED)
    page.y += 16
    gap = 24
    cell_w = (width - 2 * gap) // 3
    ratio_w, ratio_h = (int(part) for part in brief.aspect_ratio.split(":"))
    cell_h = min(round(cell_w * ratio_h / ratio_w), 640)
    top = page.y
    bottom = top
    for column, chain in enumerate(CHAINS):
        x = MARGIN + column * (cell_w + gap)
        cell = doc.rows[number - 1].get(chain)
        page.text(chain, 22, x, cell_w, y=top)
        image_top = top + 34
        if cell is None:
            page.draw.rectangle((x, image_top, x + cell_w, image_top + cell_h), fill=EMPTY)
            page.draw.text((x + cell_w / 2, image_top + cell_h / 2), "not made", font=page.font(20), fill=MUTED,
                           anchor="mm")
            y = image_top + cell_h + 10
        else:
            picture = _picture(cell.data, (cell_w, cell_h))
            page.image.paste(picture, (x + (cell_w - picture.width) // 2, image_top))
            y = image_top + cell_h + 10
            for text, fill in _cell_lines(cell.provenance):
                y = page.text(text, 16, x, cell_w, fill=fill, max_lines=4, y=y) + 4
        bottom = max(bottom, y)
    page.y = bottom
    page.rule()
    texts = [("Reference", scene.reference), ("Start", scene.start), ("End", scene.end)]
    if scene.continuity.strip():
        texts.append(("Continuity", scene.continuity))
    texts.append(("Caption", f"\u201c{scene.caption.strip()}\u201d" if scene.caption.strip() else "none"))
    room = PAGE[1] - MARGIN - 20 - page.y
    for px in (24, 22, 20, 18, 16, 15):
        step = round(px * 1.3)
        needed = sum((len(page.lines(text, px, width - 170)) * step + 12) for _, text in texts)
        if needed <= room:
            break
    for label, text in texts:
        left = page.y
        page.text(label, px, MARGIN, 160, fill=MUTED, y=left)
        remaining = max(1, (PAGE[1] - MARGIN - 20 - left) // round(px * 1.3))
        page.y = page.text(text, px, MARGIN + 170, width - 170, max_lines=remaining, y=left) + 12


def render_storyboard_pdf(doc: StoryboardDocument) -> bytes:
    """The PDF: a cover and one page per scene, each numbered."""
    key = font_key(doc.font)
    total = 1 + len(doc.brief.scenes)
    pages = []
    cover = _Page(key)
    _cover(doc, cover)
    pages.append(cover)
    for number in range(1, len(doc.brief.scenes) + 1):
        page = _Page(key)
        _scene(doc, page, number)
        pages.append(page)
    for index, page in enumerate(pages, start=1):
        page.footer(index, total, doc.campaign)
    buffer = io.BytesIO()
    first, rest = pages[0].image, [page.image for page in pages[1:]]
    first.save(buffer, "PDF", save_all=True, append_images=rest, resolution=DPI, quality=85,
               title=doc.brief.title or doc.campaign, producer="adchain", creationDate=None, modDate=None)
    return buffer.getvalue()
