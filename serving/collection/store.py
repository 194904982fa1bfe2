"""The arrays of an index version (``serving.collection.layout``): photos and captions parts."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from serving.collection import layout


@dataclasses.dataclass(frozen=True, eq=False)
class Photos:
    """The indexed photos, sorted by id.

    Attributes:
        ids: unicode [N], paths relative to the collection.
        hashes: unicode [N], SHA-256 of each photo's content.
        captions: unicode [N], display captions ("" when none).
        embeddings: float32 [N, d] unit rows.

    """

    ids: np.ndarray
    hashes: np.ndarray
    captions: np.ndarray
    embeddings: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class CaptionRows:
    """The indexed captions, sorted by id.

    Attributes:
        ids: unicode [C] caption ids.
        texts: unicode [C].
        photo_ids: unicode [C], the photo of each caption.
        embeddings: float32 [C, d] unit rows.

    """

    ids: np.ndarray
    texts: np.ndarray
    photo_ids: np.ndarray
    embeddings: np.ndarray


def _save(part: object, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for field in dataclasses.fields(part):
        value = getattr(part, field.name)
        array = value if value.dtype == np.float32 else np.asarray(value.tolist(), dtype=str)
        np.save(os.path.join(directory, f"{field.name}.npy"), array, allow_pickle=False)


def _load(cls: type, directory: str, mmap: bool) -> object:
    values = {field.name: np.load(os.path.join(directory, f"{field.name}.npy"),
                                  mmap_mode="r" if mmap and field.name == "embeddings" else None,
                                  allow_pickle=False)
              for field in dataclasses.fields(cls)}
    rows = {name: len(value) for name, value in values.items()}
    if len(set(rows.values())) != 1:
        raise ValueError(f"{directory}: arrays of different lengths {rows}")
    return cls(**values)


def save_photos(photos: Photos, version_dir: str) -> None:
    """Writes the photos part into ``<version_dir>/photos``."""
    _save(photos, os.path.join(version_dir, layout.PHOTOS))


def save_captions(captions: CaptionRows, version_dir: str) -> None:
    """Writes the captions part into ``<version_dir>/captions``."""
    _save(captions, os.path.join(version_dir, layout.CAPTIONS))


def load_photos(version_dir: str, mmap: bool = True) -> Photos:
    """Reads the photos part; embeddings are memory-mapped unless ``mmap`` is False.

    Raises:
        ValueError: arrays of different lengths.

    """
    return _load(Photos, os.path.join(version_dir, layout.PHOTOS), mmap)


def load_captions(version_dir: str, mmap: bool = True) -> CaptionRows:
    """Reads the captions part (see ``load_photos``)."""
    return _load(CaptionRows, os.path.join(version_dir, layout.CAPTIONS), mmap)
