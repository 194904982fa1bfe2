"""Photo queries of ``python -m pipeline search --image``: every file checked, then searched.

Each file is read with a byte limit (``read_photo_file``) and checked as the client checks images
before sending them (``serving.validation.check_image_bytes``), then run through the search
model's image-bytes signature (``search_by_image`` or ``search_captions_by_image``), which is
loaded once. A file that fails either step is reported by name and the other files are still
searched.
"""

import dataclasses
import time
from collections.abc import Sequence

import tensorflow as tf

from serving.photo_file import read_photo_file
from serving.savedmodel import load_saved_model
from serving.search_model import result_rows
from serving.tf_errors import error_detail
from serving.validation import check_image_bytes
from trainer import features

Row = tuple[str, float, str]


@dataclasses.dataclass(frozen=True)
class PhotoResult:
    """One photo's answer: its rows and query seconds, or why it could not be searched."""

    path: str
    rows: list[Row]
    seconds: float
    error: str = ""


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
