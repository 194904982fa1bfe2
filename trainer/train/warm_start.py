"""Warm start across data spans: the caption vocabulary may have changed since the base model.

Retraining on a new span re-runs Transform, whose vocabulary (and so the token embedding's row
count) usually differs from the base model's. The base model's towers are restored into towers
built for the OLD vocabulary, then copied over: every weight of unchanged shape as is, and the
token embedding row by row, matched by token (padding and OOV rows by position). Tokens new to
this span keep their fresh initialization.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer import preprocessing

TowerBuilder = Callable[[int], tuple[keras.Model, keras.Model]]


def read_vocabulary(path: str) -> list[str]:
    """The tokens of a Transform vocabulary file, in id order."""
    with tf.io.gfile.GFile(path) as f:
        return [line.rstrip("\n") for line in f]


def remap_embedding(
    new: np.ndarray, old: np.ndarray, new_vocab: list[str], old_vocab: list[str]
) -> np.ndarray:
    """Copies the rows of ``old`` [1 + V_old + K, w] into ``new`` [1 + V_new + K, w] by token.

    Row 0 is padding, rows 1..V the vocabulary, the last K rows the OOV buckets.
    """
    out = new.copy()
    out[0] = old[0]
    old_index = {token: i for i, token in enumerate(old_vocab)}
    for i, token in enumerate(new_vocab):
        if token in old_index:
            out[1 + i] = old[1 + old_index[token]]
    oov = new.shape[0] - 1 - len(new_vocab)
    if oov:
        out[-oov:] = old[-oov:]
    return out


def warm_start_towers(
    image_tower: keras.Model,
    text_tower: keras.Model,
    base_model: str,
    new_vocab: list[str] | None,
    build_towers: TowerBuilder,
    restore: Callable[[keras.Model, keras.Model, str], None],
) -> None:
    """Initializes the towers from ``base_model``, remapping the token embedding if needed.

    Args:
      image_tower: the freshly built image tower.
      text_tower: the freshly built text tower.
      base_model: the previous serving SavedModel directory.
      new_vocab: this run's caption vocabulary (None for towers without tokens).
      build_towers: ``vocab_size -> (image_tower, text_tower)`` with this run's configuration.
      restore: restores towers of identical shapes from a SavedModel (``task.warm_start``).

    """
    old_vocab_path = os.path.join(base_model, "assets", preprocessing.VOCAB_NAME)
    if new_vocab is None or not tf.io.gfile.exists(old_vocab_path):
        restore(image_tower, text_tower, base_model)
        return
    old_vocab = read_vocabulary(old_vocab_path)
    if old_vocab == new_vocab:
        restore(image_tower, text_tower, base_model)
        return
    new_size = _embedding_rows(text_tower, len(new_vocab))
    old_image, old_text = build_towers(new_size - len(new_vocab) + len(old_vocab))
    restore(old_image, old_text, base_model)
    image_tower.set_weights(old_image.get_weights())
    for new_w, old_w in zip(text_tower.weights, old_text.weights, strict=True):
        if new_w.shape == old_w.shape:
            new_w.assign(old_w)
        else:
            new_w.assign(remap_embedding(new_w.numpy(), old_w.numpy(), new_vocab, old_vocab))
    kept = len(set(new_vocab) & set(old_vocab))
    logging.info(
        "warm start remapped the token embedding: %d of %d tokens kept from %s",
        kept,
        len(new_vocab),
        base_model,
    )


def _embedding_rows(text_tower: keras.Model, vocab_len: int) -> int:
    rows = [w.shape[0] for w in text_tower.weights if len(w.shape) == 2 and w.shape[0] > vocab_len]
    if len(rows) != 1:
        raise ValueError(
            f"warm start: expected one token embedding with more than {vocab_len} rows in the "
            f"text tower, found {len(rows)}"
        )
    return rows[0]
