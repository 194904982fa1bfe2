"""Collections and serving folders for the collection index tests (toy encoder, noise photos)."""

from __future__ import annotations

import pathlib
import shutil

from serving.validation import DEFAULT_MAX_IMAGE_BYTES
from tests import images

MODEL = "xmodal"


def push(serving_dir: pathlib.Path, encoder_dir: pathlib.Path, version: int) -> pathlib.Path:
    """Copies an encoder into ``<serving_dir>/xmodal/<version>`` as the Pusher would."""
    target = serving_dir / MODEL / str(version)
    shutil.copytree(encoder_dir, target)
    return target


def write_photos(folder: pathlib.Path, seeds: range) -> list[str]:
    """Noise JPEGs ``p<seed>.jpg`` (every third in ``sub/``); returns their relative ids."""
    ids = []
    for seed in seeds:
        relative = f"sub/p{seed}.jpg" if seed % 3 == 2 else f"p{seed}.jpg"
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(images.jpeg(seed))
        ids.append(relative)
    return sorted(ids)


def write_bad_photos(folder: pathlib.Path) -> dict[str, str]:
    """Every kind of bad photo; returns file name → the manifest reason it must get."""
    reasons = {"empty.jpg": "empty", "truncated.jpg": "truncated", "truncated.png": "truncated",
               "text.jpg": "not_an_image", "huge.png": "too_large", "huge.jpg": "too_large",
               "corrupt.jpg": "corrupt", "oversized.jpg": "too_large"}
    oversized = images.jpeg(0)[:-2] + b"\0" * DEFAULT_MAX_IMAGE_BYTES + b"\xff\xd9"
    for name, data in {**images.bad_files(), "corrupt.jpg": images.corrupt_jpeg(),
                       "oversized.jpg": oversized}.items():
        (folder / name).write_bytes(data)
    return reasons
