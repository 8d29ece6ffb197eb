"""Image conversions: a user's file to the PNG that is stored, a stored PNG to what is sent inline to a model,
and the small JPEG a UI shows."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

MAX_INLINE_SIDE = 2048  # a reference image's longer side, as sent inline to the model


def to_png(raw: bytes) -> bytes:
    """A user's image file (JPEG, PNG, WebP, ...) as PNG: its EXIF orientation applied, every pixel kept."""
    with Image.open(io.BytesIO(raw)) as image:
        image = ImageOps.exif_transpose(image)
        converted = image.convert("RGBA" if image.has_transparency_data else "RGB")
        buffer = io.BytesIO()
        converted.save(buffer, "PNG")
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return image.size


def inline_reference(png: bytes, max_side: int = MAX_INLINE_SIDE) -> bytes:
    """``png`` as it is sent to the model: at most ``max_side`` pixels on its longer side (a user's photo can
    be far larger than a request may carry inline); the stored image keeps every pixel."""
    with Image.open(io.BytesIO(png)) as image:
        if max(image.size) <= max_side:
            return png
        scaled = image.copy()
        scaled.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        scaled.save(buffer, "PNG")
        return buffer.getvalue()


def thumbnail_jpeg(image_bytes: bytes, max_px: int) -> bytes:
    """A small JPEG of an image, at most ``max_px`` on its longer side."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        thumb = image.convert("RGB")
        thumb.thumbnail((max_px, max_px))
        buffer = io.BytesIO()
        thumb.save(buffer, "JPEG", quality=70, optimize=True)
    return buffer.getvalue()
