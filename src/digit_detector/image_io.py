"""Safe image loading for uploads and the CLI: size and pixel limits, decompression bombs
refused, EXIF orientation honoured, clear messages for anything unreadable."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 16_000_000  # e.g. 4000 x 4000
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")


class ImageLoadError(UserError, ValueError):
    """The file is not an image we accept; the message says why, for the user."""


def load_image(
    source: str | Path | bytes,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    formats: tuple[str, ...] | None = ALLOWED_FORMATS,
) -> Image.Image:
    """Open, check and decode an image fully; returns it upright (EXIF transpose applied).
    A file's messages start with its path; an upload's (bytes) are plain sentences."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"{path}: no such file")
        name = f"{path}: "
        size = path.stat().st_size
        data = path.read_bytes() if size <= max_bytes else b""
    else:
        data, name = bytes(source), ""
        size = len(data)
    if size > max_bytes:
        raise _error(name, f"the file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    if not data:
        raise _error(name, "the file is empty")
    too_big = f"over the {max_pixels / 1e6:.0f} megapixel limit: please upload a smaller image"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if formats is not None and image.format not in formats:
                kind = image.format or "this kind of"
                raise _error(name, f"{kind} images are not supported: use {', '.join(formats)}")
            width, height = image.size
            if width < 1 or height < 1:
                raise _error(name, f"the image has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise _error(name, f"the image is {width}x{height} pixels, {too_big}")
            image.load()
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses far larger images than our limit before we can read their size.
        raise _error(name, f"the image is {too_big}") from exc
    except UnidentifiedImageError as exc:
        raise _error(name, "this file is not an image we can read (use PNG, JPEG or WebP)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise _error(name, f"the image is corrupted or truncated ({exc})") from exc
    return ImageOps.exif_transpose(image)


def _error(name: str, text: str) -> ImageLoadError:
    return ImageLoadError(f"{name}{text}" if name else text[0].upper() + text[1:] + ".")
