"""Checks of client inputs, run before any request is sent."""

import os
from collections.abc import Iterable, Sequence

import numpy as np

from components.caption_example_gen.validation import check_caption
from trainer.image_backbone import JPEG_MAGIC, PNG_MAGIC

# Per encoded image. Larger files are almost always a mistake (a RAW photo, a video frame dump)
# and would exceed gRPC's default 4 MiB message limit in one request anyway.
DEFAULT_MAX_IMAGE_BYTES = 4 * 1024 * 1024
ImageSource = str | os.PathLike | bytes


def validate_captions(captions: Sequence[str]) -> np.ndarray:
    """Checks a batch of raw captions by the rules ingestion applies to the training captions.

    A caption without any word (empty, whitespace or punctuation only) is refused, as the
    ExampleGen refuses it: the model never saw one and would still return a confident-looking
    embedding for it.

    Args:
        captions: raw caption texts.

    Returns:
        object array [N] of the captions as ``str``.

    Raises:
        ValueError: ``captions`` is not a sequence (e.g. None) or is a single string, is empty,
            or holds a non-string or wordless item (named by index).

    """
    if isinstance(captions, str | bytes):
        raise ValueError("captions must be a sequence of strings, got a single string; "
                         "wrap it in a list")
    if not isinstance(captions, Iterable):
        raise ValueError(f"captions must be a sequence of strings, got {type(captions).__name__}")
    captions = list(captions)
    if not captions:
        raise ValueError("captions is empty: give at least one caption")
    for index, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise ValueError(f"captions[{index}] must be str, got {type(caption).__name__}")
        check_caption(caption, f"captions[{index}]")
    return np.asarray(captions, dtype=object)


def validate_image_features(image_features: np.ndarray, feature_dim: int | None) -> np.ndarray:
    """Checks a batch of image features.

    Args:
        image_features: array-like [N, D].
        feature_dim: the width D the model expects, or None when the model does not fix it.

    Returns:
        float32 array [N, D].

    Raises:
        ValueError: not 2-D, no rows, wrong width, or a non-finite value (first one named by
            row and column).

    """
    values = np.asarray(image_features, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"image_features must be 2-D [N, D], got shape {values.shape}")
    if values.shape[0] == 0:
        raise ValueError("image_features is empty: give at least one row")
    if feature_dim is not None and values.shape[1] != feature_dim:
        raise ValueError(f"image_features width is {values.shape[1]}, the model expects "
                         f"D={feature_dim}")
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        row, col = bad[0]
        raise ValueError(f"image_features has {len(bad)} non-finite value(s); first at row "
                         f"{row}, column {col}: {values[row, col]}")
    return values


def _image_item(item: ImageSource, index: int) -> tuple[str, bytes]:
    """(name for messages, bytes) of one image: a file path is read, bytes are taken as is."""
    if isinstance(item, bytes | bytearray):
        return f"images[{index}]", bytes(item)
    if not isinstance(item, str | os.PathLike):
        raise ValueError(f"images[{index}] must be a file path or bytes, got "
                         f"{type(item).__name__}")
    name = f"images[{index}] ({os.fspath(item)})"
    try:
        with open(item, "rb") as handle:
            return name, handle.read()
    except OSError as err:
        raise ValueError(f"{name}: cannot read: {err.strerror or err}") from err


def check_image_bytes(data: bytes, name: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> None:
    """Refuses what the served graph would refuse by its first bytes, and oversized files.

    Truncated or corrupt data past a valid signature, and too many pixels, are found only when
    the graph decodes the image (an InvalidArgumentError naming the item).

    Raises:
        ValueError: ``data`` is empty, larger than ``max_bytes``, or starts like neither a JPEG
            nor a PNG; the message starts with ``name``.

    """
    if not data:
        raise ValueError(f"{name}: empty (0 bytes)")
    if len(data) > max_bytes:
        raise ValueError(f"{name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    if not data.startswith((JPEG_MAGIC, PNG_MAGIC)):
        raise ValueError(f"{name}: not a JPEG or PNG image (first bytes {data[:8]!r})")


def validate_images(images: Sequence[ImageSource],
                    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> np.ndarray:
    """Reads and checks a batch of encoded images before anything is sent.

    Args:
        images: file paths (str or path-like) or encoded JPEG/PNG bytes, mixed freely.
        max_bytes: the largest accepted encoded image.

    Returns:
        object array [N] of the encoded bytes.

    Raises:
        ValueError: ``images`` is empty or a single item, or an item cannot be read, is empty,
            too large or not a JPEG/PNG (named by index, and path for a file).

    """
    if isinstance(images, str | bytes | bytearray | os.PathLike):
        raise ValueError("images must be a sequence of paths or bytes, got a single item; "
                         "wrap it in a list")
    if not isinstance(images, Iterable):
        raise ValueError(f"images must be a sequence of paths or bytes, got "
                         f"{type(images).__name__}")
    items = [_image_item(item, index) for index, item in enumerate(images)]
    if not items:
        raise ValueError("images is empty: give at least one image")
    for name, data in items:
        check_image_bytes(data, name, max_bytes)
    return np.asarray([data for _, data in items], dtype=object)
