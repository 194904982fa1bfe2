"""Eval-split retrieval metrics of a pair of towers (the Trainer's checkpoint selection)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer import metrics
from trainer.inputs import frozen_prefix
from trainer.inputs.data import SplitTables


def encode_rows(encode, inputs, n: int, batch: int) -> np.ndarray:
    """Applies ``encode`` to rows [i, i + batch) of ``inputs`` (array or dict) -> [n, d]."""
    return np.concatenate([
        encode(tf.nest.map_structure(lambda x, i=i: x[i:i + batch], inputs)).numpy()
        for i in range(0, n, batch)])


def evaluate(image_tower: keras.Model, text_tower: keras.Model, split: SplitTables,
             batch_size: int = 1024,
             text_prefix: frozen_prefix.FrozenPrefix | None = None) -> dict[str, float]:
    """Embeds a split (each image once) and returns ``trainer.metrics.retrieval_metrics``.

    ``text_prefix``, the split's ``FrozenPrefix`` of ``text_tower`` if given, embeds the
    captions instead of the whole tower (same embeddings, less work).
    """
    image = encode_rows(image_tower, split.image_features, len(split.image_features),
                         batch_size)
    text = (text_prefix.embed_all() if text_prefix is not None
            else encode_rows(text_tower, split.text, split.num_captions, batch_size))
    return metrics.retrieval_metrics(image, split.image_ids, text,
                                     split.image_ids[split.text_image_index])
