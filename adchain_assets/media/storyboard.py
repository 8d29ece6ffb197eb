"""The storyboard sheet: in ``sheets`` mode a first row with each subject's sheet, then one row per scene, its
reference image, start frame and end frame, with what made each image and how consistent it is; an approved image
or sheet is framed in green and labelled ``APPROVED``, and one made under director's notes shows them on a band
across its foot (a sheet without either is drawn as before)."""

from __future__ import annotations

import io
from typing import Any, Collection, Mapping, Optional, Protocol, Sequence

from PIL import Image, ImageDraw, ImageOps

from adchain_assets.media.text import drawable_text, load_font
from adchain_assets.plan.references import CHAINS

CELL_WIDTH = 240
MARGIN = 16
LABEL_HEIGHT = 56
BACKGROUND = (246, 244, 240)
INK = (40, 40, 40)
EMPTY_CELL = (214, 210, 204)
APPROVED_INK = (24, 128, 56)
NOTE_BAND = (0, 0, 0)


class Cell(Protocol):
    """A stored image: its PNG bytes and its provenance."""

    data: bytes
    provenance: Mapping[str, Any]


def score_text(consistency: Mapping[str, Mapping[str, Any]]) -> str:
    """``woman 0.31 ok  bottle 0.72 ok``: each subject's score and verdict; ``woman not scored`` when it was not."""
    parts = []
    for subject, score in consistency.items():
        if score.get("passed") is None and score.get("note"):
            parts.append(f"{subject} not scored")
            continue
        value = "-" if score.get("value") is None else format(score["value"], ".2f")
        parts.append(f"{subject} {value} {'ok' if score.get('passed') else 'X'}")
    return "  ".join(parts)


SHEET_HEIGHT = 150


def sheet_score_text(consistency: Mapping[str, Mapping[str, Any]]) -> str:
    """A sheet's own check: ``diver 2 faces ok``, ``watch 644 keypoints ok``, ``diver not scored``."""
    parts = []
    for subject, score in consistency.items():
        if score.get("passed") is None:
            parts.append(f"{subject} not scored")
            continue
        unit = "faces" if score.get("kind") == "character" else "keypoints"
        parts.append(f"{subject} {int(score.get('value') or 0)} {unit} {'ok' if score.get('passed') else 'X'}")
    return "  ".join(parts)


def render_storyboard(title: str, aspect_ratio: str, rows: list[Mapping[str, Optional[Cell]]],
                      sheets: "list[tuple[str, Optional[Cell]]] | None" = None,
                      approved: Collection[str] = (), chains: Sequence[str] = CHAINS) -> bytes:
    """A PNG sheet: ``rows[k-1]`` maps each of ``chains`` (a column each; a placement's storyboard has start and
    end only) to scene k's image (None when not made yet); ``sheets`` (output name, stored sheet or None) are drawn
    first, in a row of their own; the ``approved`` outputs (``reference/scene_2``, ``subjects/diver``) are marked."""
    ratio_w, ratio_h = (int(part) for part in aspect_ratio.split(":"))
    cell_height = round(CELL_WIDTH * ratio_h / ratio_w)
    header = 56
    sheets = sheets or []
    per_row = len(chains)
    sheet_rows = -(-len(sheets) // per_row)
    sheet_block = sheet_rows * (SHEET_HEIGHT + LABEL_HEIGHT + MARGIN)
    width = MARGIN + len(chains) * (CELL_WIDTH + MARGIN)
    height = header + sheet_block + len(rows) * (cell_height + LABEL_HEIGHT + MARGIN) + MARGIN
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, 14), drawable_text(title) or "storyboard", fill=INK, font=load_font(22))
    small = load_font(13)
    for index, (name, cell) in enumerate(sheets):
        top = header + (index // per_row) * (SHEET_HEIGHT + LABEL_HEIGHT + MARGIN)
        left = MARGIN + (index % per_row) * (CELL_WIDTH + MARGIN)
        box = (left, top, left + CELL_WIDTH, top + SHEET_HEIGHT)
        label = name
        if cell is None:
            draw.rectangle(box, fill=EMPTY_CELL)
            label += "  (not made)"
        else:
            draw.rectangle(box, fill=(255, 255, 255))
            with Image.open(io.BytesIO(cell.data)) as picture:
                fitted = ImageOps.contain(picture.convert("RGB"), (CELL_WIDTH, SHEET_HEIGHT))
            sheet.paste(fitted, (left + (CELL_WIDTH - fitted.width) // 2, top + (SHEET_HEIGHT - fitted.height) // 2))
            record = cell.provenance
            label += "  photo" if record.get("backend") == "user" else f"  take {record.get('take', 0)}"
            _mark(draw, box, label, name in approved, record.get("note"), small)
            draw.text((left, top + SHEET_HEIGHT + 20), f"{record.get('backend')} | {record.get('model', '')}",
                      fill=INK, font=small)
            draw.text((left, top + SHEET_HEIGHT + 36), drawable_text(sheet_score_text(record.get("consistency", {}))),
                      fill=INK, font=small)
        draw.text((left, top + SHEET_HEIGHT + 4), label, fill=INK, font=small)
    for row_index, row in enumerate(rows):
        top = header + sheet_block + row_index * (cell_height + LABEL_HEIGHT + MARGIN)
        for column, chain in enumerate(chains):
            left = MARGIN + column * (CELL_WIDTH + MARGIN)
            image = row.get(chain)
            box = (left, top, left + CELL_WIDTH, top + cell_height)
            label = f"{chain}/scene_{row_index + 1}"
            if image is None:
                draw.rectangle(box, fill=EMPTY_CELL)
                label += "  (not made)"
            else:
                with Image.open(io.BytesIO(image.data)) as picture:
                    sheet.paste(picture.convert("RGB").resize((CELL_WIDTH, cell_height)), box[:2])
                record = image.provenance
                label += f"  take {record['take']}"
                _mark(draw, box, label, f"{chain}/scene_{row_index + 1}" in approved, record.get("note"), small)
                # What made it, not what it cost this time: a sheet of the same images is the same sheet, whether
                # they came from the model or the cache (costs are in the report).
                detail = f"{record['backend']} | {record.get('model', '')}"
                draw.text((left, top + cell_height + 20), detail, fill=INK, font=small)
                scores = score_text(record.get("consistency", {}))
                draw.text((left, top + cell_height + 36), drawable_text(scores), fill=INK, font=small)
            draw.text((left, top + cell_height + 4), label, fill=INK, font=small)
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()


def _mark(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], label: str, approved: bool,
          note: Optional[str], font) -> None:
    """The sign-off (a green frame, ``APPROVED`` after the label) and the notes (a band across the picture's foot)."""
    left, top, right, bottom = box
    if note:
        band = bottom - 18
        draw.rectangle((left, band, right, bottom), fill=NOTE_BAND)
        text = drawable_text(f"note: {note}")
        while text and font.getlength(text) > right - left - 8:
            text = text[:-2] + "~"
        draw.text((left + 4, band + 2), text, fill=(255, 255, 255), font=font)
    if approved:
        draw.rectangle((left - 3, top - 3, right + 2, bottom + 2), outline=APPROVED_INK, width=3)
        draw.text((left + font.getlength(label) + 8, bottom + 4), "APPROVED", fill=APPROVED_INK, font=font)
