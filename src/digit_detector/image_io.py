"""Safe image loading for uploads and the CLI: size and pixel limits, decompression bombs
refused, EXIF orientation honoured, clear messages for anything unreadable."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 16_000_000  # e.g. 4000 x 4000
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")


class ImageLoadError(ValueError):
    """The file is not an image we accept; the message says why, for the user."""


def load_image(
    source: str | Path | bytes,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    formats: tuple[str, ...] | None = ALLOWED_FORMATS,
) -> Image.Image:
    """Open, check and decode an image fully; returns it upright (EXIF transpose applied)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"{path}: no such file")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageLoadError(f"{path}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
        data = path.read_bytes()
        name = str(path)
    else:
        data, name = bytes(source), "upload"
        if len(data) > max_bytes:
            raise ImageLoadError(
                f"{name}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit"
            )
    if not data:
        raise ImageLoadError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if formats is not None and image.format not in formats:
                raise ImageLoadError(
                    f"{name}: {image.format or 'unknown'} images are not supported (use {', '.join(formats)})"
                )
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageLoadError(f"{name}: the image has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"{name}: {width}x{height} is over the {max_pixels / 1e6:.0f} megapixel limit"
                )
            image.load()
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{name}: refused, it looks like a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{name}: not a readable image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{name}: the image is corrupted or truncated ({exc})") from exc
    return ImageOps.exif_transpose(image)
