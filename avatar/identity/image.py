"""Reading a photo safely: size checks from the header, then decoding to RGB."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from avatar.identity.errors import ImageDecodeError, ImageTooLargeError, ImageTooSmallError

log = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000
"""Largest photo accepted (40 megapixels); bigger ones are refused before decoding."""
MIN_SIDE = 64
"""Smallest accepted width or height in pixels."""

RGBImage = npt.NDArray[np.uint8]


def check_dimensions(width: int, height: int, *, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse images that are too small or have too many pixels."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageTooSmallError(
            f"image is {width}x{height} px; a portrait needs at least {MIN_SIDE}x{MIN_SIDE} px"
        )
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} px ({width * height / 1e6:.0f} MP); "
            f"the limit is {max_pixels / 1e6:.0f} MP — downscale it first"
        )


def _from_array(arr: np.ndarray, max_pixels: int) -> RGBImage:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageDecodeError(f"expected an H×W×3 RGB array, got shape {arr.shape}")
    check_dimensions(arr.shape[1], arr.shape[0], max_pixels=max_pixels)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[:, :, :3])


def load_image(photo: Path | np.ndarray, *, max_pixels: int = MAX_PIXELS) -> RGBImage:
    """Load a photo (a file or an RGB array) as an H×W×3 uint8 RGB array.

    The pixel count is checked from the file header before any pixel is decoded, so a
    huge image (or a decompression bomb) is refused cheaply. EXIF orientation is applied.
    """
    if isinstance(photo, np.ndarray):
        return _from_array(photo, max_pixels)
    path = Path(photo)
    if not path.is_file():
        raise ImageDecodeError(f"photo not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                check_dimensions(img.size[0], img.size[1], max_pixels=max_pixels)
                oriented = ImageOps.exif_transpose(img)
                rgb = oriented.convert("RGB")
                arr = np.asarray(rgb, dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"{path.name} is far above the {max_pixels / 1e6:.0f} MP limit ({exc})"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"{path.name} is not a readable image") from exc
    except (ImageTooLargeError, ImageTooSmallError):
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{path.name} could not be decoded: {exc}") from exc
    log.debug("loaded %s: %dx%d", path, arr.shape[1], arr.shape[0])
    return np.ascontiguousarray(arr)
