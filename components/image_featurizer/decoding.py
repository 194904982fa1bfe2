"""Image files to uint8 RGB arrays, with an explicit policy for every kind of bad input.

Policy (each case is counted; skipped and converted files are reported by name):
  * unreadable file (I/O error)              -> skipped, reason ``unreadable``
  * not an image (PIL cannot identify it)    -> skipped, reason ``not_an_image``
  * corrupt / truncated image data           -> skipped, reason ``corrupt``
  * more than ``max_pixels`` pixels (width x height from the header, checked before any pixel
    is decoded; default = PIL's decompression-bomb limit) -> skipped, reason ``too_large``
  * grayscale, palette, CMYK, YCbCr, 1-bit, ... -> converted to RGB (``converted_from`` = mode)
  * alpha (RGBA, LA, PA, palette transparency) -> composited over white, then RGB
  * 16/32-bit integer or float gray            -> rescaled to 8 bits, then RGB
  * any size other than ``size``               -> resized with PIL bilinear (antialiased when
    shrinking), straight to (width, height) with no crop, as in the reference recipe.
Decoding is EXIF-agnostic: pixels are used as stored (no EXIF rotation), like
``tf.io.decode_jpeg``. Multi-frame files (GIF, TIFF) use their first frame.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

UNREADABLE = "unreadable"
NOT_AN_IMAGE = "not_an_image"
CORRUPT = "corrupt"
TOO_LARGE = "too_large"
SKIP_REASONS = (UNREADABLE, NOT_AN_IMAGE, CORRUPT, TOO_LARGE)
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # 89,478,485: PIL's decompression-bomb limit

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_GRAY_MAX = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 255.0}
_WHITE = (255, 255, 255)


class ImageSkipped(Exception):
    """A file the featurizer skips by policy; ``reason`` is one of ``SKIP_REASONS``."""

    def __init__(self, name: str, reason: str, detail: str):
        super().__init__(f"{name}: skipped ({reason}): {detail}")
        self.name = name
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class DecodedImage:
    """One decoded image.

    Attributes:
      name: the file name relative to the images folder (the features' row key).
      pixels: uint8 [height, width, 3] RGB at the requested size.
      converted_from: the original PIL mode when it was not RGB, else "".
      original_size: (width, height) before resizing.

    """

    name: str
    pixels: np.ndarray
    converted_from: str
    original_size: tuple[int, int]


def decode_image(
    data: bytes, name: str, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Decodes encoded image bytes to RGB uint8 pixels of ``size`` (height, width).

    Raises:
      ImageSkipped: for non-images, corrupt data and images over ``max_pixels``.

    """
    image = open_header(data, name)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageSkipped(
            name, TOO_LARGE, f"{width}x{height} = {width * height} pixels > max {max_pixels}"
        )
    try:
        image.load()
        rgb = to_rgb(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageSkipped(name, CORRUPT, f"{type(err).__name__}: {err}") from err
    target_height, target_width = size
    if rgb.size != (target_width, target_height):
        rgb = rgb.resize((target_width, target_height), Image.Resampling.BILINEAR)
    return DecodedImage(
        name=name,
        pixels=np.asarray(rgb, dtype=np.uint8),
        converted_from="" if image.mode == "RGB" else image.mode,
        original_size=(width, height),
    )


def open_header(data: bytes, name: str) -> Image.Image:
    """Reads the header only (lazy PIL open); classifies what cannot be opened."""
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as err:
        raise ImageSkipped(name, NOT_AN_IMAGE, "PIL cannot identify the file as an image") from err
    except Image.DecompressionBombError as err:
        raise ImageSkipped(name, TOO_LARGE, str(err)) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageSkipped(name, CORRUPT, f"bad header: {type(err).__name__}: {err}") from err


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts any PIL mode to RGB (alpha over white, wide grays rescaled to 8 bits)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in _WIDE_GRAY_MAX:
        gray = np.asarray(image, dtype=np.float64) * (255.0 / _WIDE_GRAY_MAX[mode])
        eight_bit = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        return Image.fromarray(eight_bit, mode="L").convert("RGB")
    return image.convert("RGB")
