"""Checks of client inputs, run before any request is sent."""

import os
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from serving.photo_file import DEFAULT_MAX_IMAGE_BYTES, read_photo_file
from serving.tf_errors import error_detail
from trainer.features import DEFAULT_MAX_PIXELS, JPEG_END, JPEG_MAGIC, PNG_END, PNG_MAGIC
from trainer.tokens.text import check_caption

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


def _image_item(item: ImageSource, index: int, max_bytes: int) -> tuple[str, bytes]:
    """(name for messages, bytes) of one image: a file path is read, bytes are taken as is.

    A path is read by ``read_photo_file``: only a regular file, and at most ``max_bytes`` + 1
    bytes of it, so a device or a huge file is refused before it fills the memory.
    """
    if isinstance(item, bytes | bytearray):
        return f"images[{index}]", bytes(item)
    if not isinstance(item, str | os.PathLike):
        raise ValueError(f"images[{index}] must be a file path or bytes, got "
                         f"{type(item).__name__}")
    path = os.fspath(item)
    name = f"images[{index}] ({path})"
    try:
        return name, read_photo_file(path, max_bytes)
    except ValueError as err:  # its message starts with the path: name the index too
        raise ValueError(f"{name}{str(err).removeprefix(path)}") from err


def image_shape(data: bytes, name: str) -> tuple[int, int]:
    """(height, width) that a JPEG's or PNG's header declares, read as the served graph reads it.

    Raises:
        ValueError: a JPEG header that libjpeg cannot parse, or a PNG without its IHDR chunk.

    """
    if data.startswith(PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ValueError(f"{name}: truncated PNG (no IHDR header)")
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    try:
        height, width, _ = tf.image.extract_jpeg_shape(data).numpy()
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(f"{name}: unreadable JPEG header: {error_detail(err.message)}") from err
    return int(height), int(width)


def check_image_bytes(data: bytes, name: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuses, before anything is sent, what the served graph would refuse without decoding.

    That is every bad input of the served graph's own checks (``trainer.model.image_backbone``),
    plus
    files over ``max_bytes``. Only data that is corrupt past a readable header and before its
    end marker reaches the server and fails there (INVALID_ARGUMENT).

    Raises:
        ValueError: ``data`` is empty, larger than ``max_bytes``, starts like neither a JPEG nor
            a PNG, has no end marker (cut off), an unreadable header, or declares more than
            ``max_pixels`` pixels; the message starts with ``name``.

    """
    if not data:
        raise ValueError(f"{name}: empty (0 bytes)")
    if len(data) > max_bytes:
        raise ValueError(f"{name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    if not data.startswith((JPEG_MAGIC, PNG_MAGIC)):
        raise ValueError(f"{name}: not a JPEG or PNG image (first bytes {data[:8]!r})")
    is_jpeg = data.startswith(JPEG_MAGIC)
    if (JPEG_END if is_jpeg else PNG_END) not in data:
        kind = "JPEG (no end-of-image marker)" if is_jpeg else "PNG (no IEND chunk)"
        raise ValueError(f"{name}: truncated {kind}")
    height, width = image_shape(data, name)
    if height * width > max_pixels:
        raise ValueError(f"{name}: too large: {height}x{width} (height x width) = "
                         f"{height * width} pixels > max {max_pixels}")


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
    items = [_image_item(item, index, max_bytes) for index, item in enumerate(images)]
    if not items:
        raise ValueError("images is empty: give at least one image")
    for name, data in items:
        check_image_bytes(data, name, max_bytes)
    return np.asarray([data for _, data in items], dtype=object)
