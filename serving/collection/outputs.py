"""Reading what the embedding job wrote (``serving.collection.job``), from any filesystem."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow as tf

from serving.collection import job

_BATCH = 4096


def _shards(output_dir: str, stem: str) -> list[str]:
    return sorted(tf.io.gfile.glob(f"{output_dir.rstrip('/')}/{stem}*{job.SHARD_SUFFIX}"))


def read_records(output_dir: str, stem: str, keys: tuple[str, ...],
                 dim: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The string columns ``keys`` and the embeddings [N, dim] of one kind of shard.

    Args:
        output_dir: the job's output folder.
        stem: ``job.PHOTO_SHARDS`` or ``job.CAPTION_SHARDS``.
        keys: the string fields to read (e.g. ``("id", "hash")``).
        dim: the embedding width d.

    Returns:
        ``({key: unicode [N]}, float32 [N, dim])`` in shard order (empty when no shard).

    """
    spec = {key: tf.io.FixedLenFeature([], tf.string) for key in keys}
    spec["embedding"] = tf.io.FixedLenFeature([dim], tf.float32)
    columns: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    embeddings = []
    files = _shards(output_dir, stem)
    if files:
        dataset = tf.data.TFRecordDataset(files).batch(_BATCH).map(
            lambda batch: tf.io.parse_example(batch, spec))
        for batch in dataset.as_numpy_iterator():
            for key in keys:
                columns[key].append(np.char.decode(batch[key].astype(bytes), "utf-8"))
            embeddings.append(batch["embedding"])
    text = {key: (np.concatenate(parts) if parts else np.zeros((0,), dtype=str))
            for key, parts in columns.items()}
    matrix = np.concatenate(embeddings) if embeddings else np.zeros((0, dim), np.float32)
    return text, matrix.astype(np.float32, copy=False)


def read_lines(path: str) -> list[Any]:
    """The JSON values of a ``.jsonl`` file the job wrote (none when it wrote no file)."""
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path, "r") as handle:
        return [json.loads(line) for line in handle if line.strip()]
