"""The ROUGE-L relevance matrix of one eval set: canonical order, content key, cache files.

An eval set is its (image_id, caption_id, caption) triples. Rows of its relevance matrix are the
captions sorted by caption id, columns the distinct images sorted by image id; the content key is
a SHA-256 of the sorted triples, so the Relevance component (which writes the matrix) and the
TFMA retrieval metric (which reads it) agree on one file per eval span without talking.
Files: ``<dir>/<key>.npy`` (float32 [N_txt, N_img]) and ``<dir>/<key>.json`` (the ids).
Human relevance judgments, when a dataset has them, replace ROUGE-L by saving them with ``save``
under the same key: the metric reads whatever matrix the key holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import uuid
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from serving.rouge import RelevanceScorer

MATRIX_SUFFIX = ".npy"
IDS_SUFFIX = ".json"


def _text(value) -> str:
    """UTF-8 text of a bytes or str id/caption."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """The captions of an eval split in canonical order (sorted by caption id).

    Attributes:
      caption_ids: [N_txt] caption ids, sorted and unique.
      image_ids: [N_txt] the image id of each caption.
      captions: [N_txt] caption texts.
      gallery: [N_img] distinct image ids, sorted.

    """

    caption_ids: tuple[str, ...]
    image_ids: tuple[str, ...]
    captions: tuple[str, ...]
    gallery: tuple[str, ...]

    @classmethod
    def from_triples(cls, image_ids: Sequence, caption_ids: Sequence,
                     captions: Sequence) -> EvalSet:
        """Builds the canonical set; a caption id given twice is an error naming it."""
        rows = sorted(zip(map(_text, caption_ids), map(_text, image_ids), map(_text, captions),
                          strict=True))
        for before, after in zip(rows, rows[1:], strict=False):
            if before[0] == after[0]:
                raise ValueError(f"caption id {before[0]!r} appears more than once in the eval set")
        if not rows:
            return cls((), (), (), ())
        caption_col, image_col, text_col = (tuple(c) for c in zip(*rows, strict=True))
        return cls(caption_col, image_col, text_col, tuple(sorted(set(image_col))))

    @property
    def key(self) -> str:
        """SHA-256 hex digest of the sorted (caption_id, image_id, caption) triples."""
        digest = hashlib.sha256()
        for row in zip(self.caption_ids, self.image_ids, self.captions, strict=True):
            digest.update(json.dumps(row).encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()

    def image_index(self) -> np.ndarray:
        """int64 [N_txt]: gallery column of each caption's image."""
        column = {image_id: j for j, image_id in enumerate(self.gallery)}
        return np.array([column[i] for i in self.image_ids], dtype=np.int64)

    def scorer(self) -> RelevanceScorer:
        """A ROUGE-L scorer whose references are all captions of this set."""
        return RelevanceScorer(self.captions, self.image_index(), len(self.gallery))


def compute(eval_set: EvalSet) -> np.ndarray:
    """float32 [N_txt, N_img] relevance of every image to every caption, in-process."""
    return eval_set.scorer().score(eval_set.captions)


def _paths(directory: str, key: str) -> tuple[str, str]:
    return os.path.join(directory, key + MATRIX_SUFFIX), os.path.join(directory, key + IDS_SUFFIX)


def save(directory: str, eval_set: EvalSet, relevance: np.ndarray) -> str:
    """Writes the matrix and its ids atomically (temp file + rename); returns the matrix path."""
    expected = (len(eval_set.caption_ids), len(eval_set.gallery))
    if relevance.shape != expected:
        raise ValueError(f"relevance shape {relevance.shape} != [N_txt, N_img] {expected}")
    tf.io.gfile.makedirs(directory)
    matrix_path, ids_path = _paths(directory, eval_set.key)
    ids = {"caption_ids": eval_set.caption_ids, "gallery": eval_set.gallery}
    buffer = io.BytesIO()
    np.save(buffer, relevance.astype(np.float32))
    for path, payload in ((ids_path, json.dumps(ids).encode("utf-8")),
                          (matrix_path, buffer.getvalue())):
        temp = f"{path}.tmp-{uuid.uuid4().hex}"
        with tf.io.gfile.GFile(temp, "wb") as f:
            f.write(payload)
        tf.io.gfile.rename(temp, path, overwrite=True)
    return matrix_path


def load(directory: str, eval_set: EvalSet) -> np.ndarray | None:
    """The cached matrix of this eval set, or None when the directory has none for its key."""
    matrix_path, ids_path = _paths(directory, eval_set.key)
    if not tf.io.gfile.exists(matrix_path):
        return None
    with tf.io.gfile.GFile(ids_path, "rb") as f:
        ids = json.loads(f.read())
    stored = (tuple(ids["caption_ids"]), tuple(ids["gallery"]))
    if stored != (eval_set.caption_ids, eval_set.gallery):
        raise ValueError(f"{ids_path}: ids do not match the eval set of key {eval_set.key}")
    with tf.io.gfile.GFile(matrix_path, "rb") as f:
        return np.load(io.BytesIO(f.read()))


def load_or_compute(directory: str | None, eval_set: EvalSet) -> tuple[np.ndarray, bool]:
    """Returns ``(relevance, was_cached)``; a miss is computed here and saved when possible."""
    cached = load(directory, eval_set) if directory else None
    if cached is not None:
        return cached, True
    relevance = compute(eval_set)
    if directory:
        save(directory, eval_set, relevance)
    return relevance, False
