"""Photo queries of ``python -m pipeline search --image``: every file checked, then searched.

Each file is read with a byte limit (``read_photo_file``) and checked as the client checks images
before sending them (``serving.validation.check_image_bytes``), then run through the search
model's image-bytes signature (``search_by_image`` or ``search_captions_by_image``), which is
loaded once. A file that fails either step is reported by name and the other files are still
searched.
"""

import dataclasses
import os
import stat
import time
from collections.abc import Sequence

import tensorflow as tf

from serving.savedmodel import load_saved_model
from serving.search_model import result_rows
from serving.validation import DEFAULT_MAX_IMAGE_BYTES, check_image_bytes
from trainer import features
from trainer.model.image_backbone import error_detail

Row = tuple[str, float, str]


@dataclasses.dataclass(frozen=True)
class PhotoResult:
    """One photo's answer: its rows and query seconds, or why it could not be searched."""

    path: str
    rows: list[Row]
    seconds: float
    error: str = ""


# What a path that is not a regular file is, for the refusal message (``stat.S_IFMT`` kinds).
_FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFIFO: "a named pipe",
               stat.S_IFSOCK: "a socket"}


def read_photo_file(path: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a photo file, read only when it is a regular file of at most ``max_bytes``.

    The file is opened without blocking (a named pipe with no writer cannot hang the caller) and
    its kind and size are checked on the open descriptor before any byte is read; then at most
    ``max_bytes + 1`` bytes are read, so a file that grows after the check is refused too. Memory
    stays bounded by ``max_bytes`` whatever ``path`` names (``/dev/zero``, a 2 GiB video, a
    FIFO). The contents are not checked: see ``serving.validation.check_image_bytes``.

    Args:
        path: the file (a symlink is followed).
        max_bytes: the largest accepted file.

    Returns:
        The whole file.

    Raises:
        ValueError: naming ``path``: it cannot be opened, is not a regular file (a directory, a
            device, a FIFO, a socket), or is larger than ``max_bytes``.

    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise ValueError(f"{path}: not a regular file ({kind}); give a JPEG or PNG file")
        if info.st_size > max_bytes:
            raise ValueError(f"{path}: {info.st_size} bytes is over the limit of {max_bytes} "
                             "bytes")
        data = _read_at_most(fd, max_bytes + 1, path)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: over the limit of {max_bytes} bytes (it grew while being "
                         "read)")
    return data


def _read_at_most(fd: int, limit: int, path: str) -> bytes:
    """Up to ``limit`` bytes of ``fd`` (fewer at the end of the file)."""
    chunks, size = [], 0
    try:
        while size < limit:
            chunk = os.read(fd, limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err.strerror or err}") from err
    return b"".join(chunks)


def read_image(path: str) -> bytes:
    """The bytes of a query photo, checked as the client checks them before sending.

    Raises:
        ValueError: unreadable, not a regular file, empty, too large, not a JPEG/PNG, cut off
            before its end marker or declaring too many pixels (the message names ``path``).

    """
    data = read_photo_file(path)
    check_image_bytes(data, path)
    return data


def _search_one(signature: tf.types.experimental.ConcreteFunction, path: str, k: int,
                model_dir: str) -> PhotoResult:
    """Checks, warms up (the first call also runs the graph's own checks), then times."""
    try:
        query = {features.IMAGE_BYTES_INPUT: tf.constant(read_image(path))}
        try:
            signature(**query)
        except tf.errors.InvalidArgumentError as err:
            raise ValueError(f"{path}: cannot be searched: {error_detail(err.message)}") from err
        start = time.perf_counter()
        out = signature(**query)
        seconds = time.perf_counter() - start
        return PhotoResult(path, result_rows(out, k, model_dir), seconds)
    except ValueError as err:
        return PhotoResult(path, [], 0.0, str(err))


def search_photos(model_dir: str, signature_name: str, paths: Sequence[str],
                  k: int) -> list[PhotoResult]:
    """Searches with each photo in ``paths``; bad files come back with ``error`` set.

    Raises:
        ValueError: the model lacks ``signature_name`` (nothing can be searched).

    """
    signatures = load_saved_model(model_dir).signatures
    if signature_name not in signatures:
        raise ValueError(f"{model_dir} has no {signature_name!r} signature (its encoder takes no "
                         "image bytes, or its gallery index holds no captions)")
    return [_search_one(signatures[signature_name], path, k, model_dir) for path in paths]
