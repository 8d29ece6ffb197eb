"""Text on pictures: Pillow's own font and the ASCII it can draw.

Pillow's scalable default font covers ASCII only; typographic punctuation and accents would render as empty
boxes, so text is folded to ASCII before it is drawn.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from PIL import ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Typography the ASCII fold would otherwise drop.
_TO_ASCII = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2026": "..."}
)


@lru_cache(maxsize=None)
def load_font(size: int) -> Font:
    """Pillow's scalable default font; the fixed-size bitmap default where Pillow lacks FreeType."""
    try:
        return ImageFont.load_default(size=size)
    except ImportError:
        return ImageFont.load_default()


def drawable_text(text: str) -> str:
    """ASCII only, accents dropped (é -> e), what cannot be drawn replaced by ``?``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_TO_ASCII))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).encode("ascii", "replace").decode()


def ascii_text(text: str) -> str:
    """``text`` folded to printable ASCII (accents and what cannot be drawn dropped), whitespace collapsed."""
    folded = unicodedata.normalize("NFKD", text.translate(_TO_ASCII)).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"\s+", " ", "".join(c for c in folded if c.isprintable() or c.isspace())).strip()
