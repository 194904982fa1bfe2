"""Encoded test images: photos of noise, and the bad files every image path must refuse.

``bad_files()`` is the input side of the bad-input matrix in docs/serving.md: the featurizer
(both backends), the ``embed_image_bytes`` signature, the client and ``search --image`` are each
tested on every one of these files.
"""

import io
import zlib

import numpy as np
from PIL import Image

# A PNG whose header declares 100,000 x 100,000 pixels, with no pixel data but its end chunk: a
# decompression bomb's header, refused before any decoding.
HUGE_SIDE = 100_000


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (len(data).to_bytes(4, "big") + kind + data
            + zlib.crc32(kind + data).to_bytes(4, "big"))


HUGE_PNG = (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", HUGE_SIDE.to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
            + _png_chunk(b"IEND", b""))
# The largest side libjpeg-turbo reads (a JPEG's 16-bit fields could declare 65,535; TensorFlow's
# header reader refuses more than 65,500 as "Invalid JPEG data", naming no item).
JPEG_MAX_SIDE = 65_500
# Start-of-frame markers (baseline, extended, progressive) that carry a JPEG's size.
_SOF_MARKERS = (0xC0, 0xC1, 0xC2)


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
    """A CMYK JPEG (Adobe-inverted, as PIL and Photoshop write them)."""
    return encode(photo(seed).convert("CMYK"), "JPEG", quality=95)


def truncated_jpeg(seed: int = 0) -> bytes:
    """The first half of a JPEG: a valid header, then the scan stops."""
    data = jpeg(seed)
    return data[: len(data) // 2]


def truncated_png(seed: int = 0) -> bytes:
    """The first half of a PNG: a valid header, then the pixel data stops."""
    data = encode(photo(seed), "PNG")
    return data[: len(data) // 2]


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of a JPEG's header segments, up to its start-of-scan."""
    found, position = [], 2
    while data[position + 1] != 0xDA:
        end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
        found.append((data[position + 1], position, end))
        position = end
    return found


def corrupt_jpeg(seed: int = 0) -> bytes:
    """A complete JPEG without its quantization tables: its header reads, only decoding fails."""
    data = jpeg(seed)
    for marker, start, end in reversed(_segments(data)):
        if marker == 0xDB:
            data = data[:start] + data[end:]
    return data


def huge_jpeg(seed: int = 0) -> bytes:
    """A real JPEG whose start-of-frame claims 65,500 x 65,500 pixels (4.3 Gpixels)."""
    data = bytearray(jpeg(seed))
    start = next(start for marker, start, _ in _segments(bytes(data)) if marker in _SOF_MARKERS)
    data[start + 5:start + 9] = JPEG_MAX_SIDE.to_bytes(2, "big") * 2
    return bytes(data)


def bad_files() -> dict[str, bytes]:
    """One file per kind of bad input, keyed by a file name that says what it is."""
    return {
        "empty.jpg": b"",
        "truncated.jpg": truncated_jpeg(),
        "truncated.png": truncated_png(),
        "text.jpg": b"this is not an image at all",
        "huge.png": HUGE_PNG,
        "huge.jpg": huge_jpeg(),
    }
