"""Encoded test images: photos of noise, and the bad files every image path must refuse."""

import io

import numpy as np
from PIL import Image

# A PNG header declaring 60,000 x 60,000 pixels and nothing else: refused before any decoding.
HUGE_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + (60_000).to_bytes(4, "big") * 2
            + b"\x08\x02\x00\x00\x00" + b"\x00" * 64)


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    """``image`` encoded as ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def photo(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """An RGB image of uniform noise, ``size`` = (width, height)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    return Image.fromarray(pixels)


def jpeg(seed: int = 0) -> bytes:
    """A noise JPEG (quality 90)."""
    return encode(photo(seed), "JPEG", quality=90)


def cmyk_jpeg(seed: int = 0) -> bytes:
    """A CMYK JPEG, which the served graph converts to RGB."""
    return encode(photo(seed).convert("CMYK"), "JPEG", quality=95)


def truncated_jpeg(seed: int = 0) -> bytes:
    """The first half of a JPEG."""
    data = jpeg(seed)
    return data[: len(data) // 2]
