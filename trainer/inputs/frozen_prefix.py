"""The frozen bottom of the ``minilm`` text tower, computed once per split.

With ``minilm_trainable_layers = k < 6`` the tower's embeddings and its lower 6 - k transformer
layers are frozen, and the encoder has no dropout: their output is a fixed function of
(ids, mask). ``FrozenPrefix`` computes it once for every caption of a split, on the real tokens
only (``MiniLMEncoder.tokens``, batches in length order so that attention's per-caption
products see little padding), with its matmuls in a given precision
(``trainer.model.precision``: the training split's in the step's, bfloat16 where the CPU has
it natively; the eval split's in float32). It keeps the hidden states as a ragged float32
table, 4 * 384 bytes per WordPiece token (Flickr8k train: 428,444 tokens for 30,000 captions,
658 MB). Each training step and evaluation then runs only the top k layers, the mean pooling
and the projection on rows gathered from the table, on real tokens only, in the table's
precision: a training step through ``trainer.model.unpadded.FlatPrefix``, evaluation through
``embed_all``. The tower itself is unchanged: its variables are trained in place and the
exported model is the full float32 tower (raw text in).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.config import TrainerConfig
from trainer.model import unpadded
from trainer.model.precision import FLOAT32, Policy
from trainer.tokens import wordpiece


def frozen_blocks(tower: keras.Model) -> int:
    """How many transformer layers at the bottom of a ``minilm`` tower's encoder are frozen.

    Raises:
        ValueError: the embeddings train, or a frozen layer sits above a trained one.

    """
    encoder = tower.encoder
    trained = [block.trainable for block in encoder.blocks]
    count = trained.index(True) if True in trained else len(trained)
    if encoder.embeddings.trainable or not all(trained[count:]):
        raise ValueError(f"{tower.name}: only a frozen bottom (embeddings and the lowest layers) "
                         f"can be cached; layers trainable: {trained}, embeddings trainable: "
                         f"{encoder.embeddings.trainable}")
    return count


class FrozenPrefix(tf.Module):
    """The hidden states of a ``minilm`` tower's frozen bottom for the rows of one text table.

    ``embed(index)`` equals ``tower(text[index])`` (to float rounding under float32), and its
    gradients reach the tower's trainable variables (top layers and projection) as the tower's
    would. It runs the top layers padded to the batch's longest caption: the reference that
    ``unpadded.FlatPrefix`` (what the Trainer steps through) is tested and benchmarked against.
    """

    def __init__(self, tower: keras.Model, text: Mapping[str, np.ndarray], batch_size: int,
                 policy: Policy = FLOAT32):
        """Runs the frozen bottom over all rows of ``text`` (the tower's input dict).

        Args:
            tower: a ``minilm`` tower (``trainer.model.minilm.build_minilm_text_tower``).
            text: ``WORDPIECE_IDS_XF`` / ``WORDPIECE_MASK_XF`` int [N, L].
            batch_size: captions per batch of the one-off bottom pass (and of ``embed_all``).
            policy: the matmul precision of the bottom pass and of ``embed_all``.

        """
        super().__init__(name="frozen_prefix")
        self.tower, self.first_block = tower, frozen_blocks(tower)
        self.batch_size, self.policy = batch_size, policy
        ids, mask = text[wordpiece.WORDPIECE_IDS_XF], text[wordpiece.WORDPIECE_MASK_XF]
        lengths = np.sum(mask != 0, axis=1)
        order = np.argsort(lengths, kind="stable")
        chunks = [self._real_tokens(ids[rows], mask[rows])
                  for rows in np.array_split(order, range(batch_size, len(order), batch_size))]
        self.values = tf.concat(chunks, axis=0)  # [tokens, H], rows in length order
        self.row_splits = tf.constant(np.concatenate([[0], np.cumsum(lengths[order])]), tf.int64)
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        self.position = tf.constant(position, tf.int64)  # table row of each input row

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64)] * 2, autograph=False)
    def _real_tokens(self, ids: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        return self.tower.encoder.tokens(ids, mask, self.first_block, self.policy)[0]

    def tokens(self, rows: tf.Tensor) -> tf.RaggedTensor:
        """The frozen-bottom states of table rows ``rows`` [B]: float32 [B, (L), H]."""
        table = tf.RaggedTensor.from_row_splits(self.values, self.row_splits, validate=False)
        return tf.gather(table, rows)

    def _embed_rows(self, rows: tf.Tensor) -> tf.Tensor:
        """Table rows [B] -> the tower's embeddings [B, d]."""
        picked = self.tokens(rows)
        hidden = picked.to_tensor()
        mask = tf.sequence_mask(picked.row_lengths(), tf.shape(hidden)[1], tf.float32)
        sentence = self.tower.encoder.top(hidden, mask, self.first_block)
        projected = self.tower.get_layer("projection")(sentence)
        return self.tower.get_layer("l2_normalize")(projected)

    def embed(self, index: tf.Tensor) -> tf.Tensor:
        """Input rows ``index`` [B] -> the tower's embeddings [B, d]."""
        return self._embed_rows(tf.gather(self.position, index))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)], autograph=False)
    def _embed_table_rows(self, rows: tf.Tensor) -> tf.Tensor:
        return unpadded.embed_tokens(self.tower, self.tokens(rows), self.first_block,
                                     self.policy)

    def embed_all(self) -> np.ndarray:
        """Embeddings [N, d] of all input rows, in input order (the top layers in the policy)."""
        n = int(self.position.shape[0])
        out = np.concatenate([
            self._embed_table_rows(tf.range(start, min(start + self.batch_size, n),
                                            dtype=tf.int64)).numpy()
            for start in range(0, n, self.batch_size)])
        return out[self.position.numpy()]


def for_tower(config: TrainerConfig, tower: keras.Model, text: Mapping[str, np.ndarray],
              batch_size: int, policy: Policy = FLOAT32) -> FrozenPrefix | None:
    """A ``FrozenPrefix`` for ``text`` when the tower is ``minilm`` with a frozen bottom.

    That is ``minilm_trainable_layers < 6`` (with 6 only the cheap embedding lookup is frozen;
    with 0 the whole encoder is, and each step only pools and projects). Otherwise None.
    The bottom pass runs in ``policy``'s matmul precision.
    """
    if config.text_tower != "minilm" or config.minilm_trainable_layers >= len(tower.encoder.blocks):
        return None
    start = time.perf_counter()
    prefix = FrozenPrefix(tower, text, batch_size, policy)
    logging.info("frozen MiniLM bottom (%d layers, %s matmuls) of %d captions: %d tokens, "
                 "%.0f MB, %.1f s", prefix.first_block, policy.compute,
                 int(prefix.position.shape[0]), int(prefix.values.shape[0]),
                 prefix.values.numpy().nbytes / 1e6, time.perf_counter() - start)
    return prefix
