"""MiniLM layers on a batch's real tokens only: no FLOPs on padding.

Padded to the batch's longest caption, about half of a MiniLM layer's rows would be padding
(Flickr8k captions average 14.3 WordPiece tokens, a batch's longest is often twice that).
Here a batch's tokens stay one flat float32 [T, 384] table (the ragged rows' values, in caption
order). The projections, the feed-forward and the LayerNorms of a ``minilm.TransformerBlock``
run on that table with the block's own variables; only attention works per caption: queries,
keys and values are scattered into [B, L, ...] for the two small per-caption products and the
context is gathered back. Mean pooling is a segment sum.

``MiniLMEncoder`` runs every call this way (the exported towers, serving, evaluation), the
cached frozen bottom (``trainer.inputs.frozen_prefix``) is computed this way, and a training
step runs the fine-tuned layers this way over that cache (``FlatPrefix``). The values and
gradients are those of the padded layers (``MiniLMEncoder.bottom``/``top``, the reference),
to float rounding. Which captions share a batch is unchanged (no length bucketing). A
``trainer.model.precision.Policy`` chooses the dtype of every matmul here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import tensorflow as tf
import tf_keras as keras

from trainer.model.precision import FLOAT32, Policy

if TYPE_CHECKING:  # both import this module
    from trainer.inputs import frozen_prefix
    from trainer.model import minilm


class TokenLayout(NamedTuple):
    """Where each of a batch's T tokens sits: its caption and its slot in a padded batch.

    Attributes:
        lengths: int64 [B] tokens per caption.
        longest: int64 scalar L, the longest caption.
        rows: int64 [T] caption of each token.
        slots: int64 [T] each token's row in the padded [B * L] layout.

    """

    lengths: tf.Tensor
    longest: tf.Tensor
    rows: tf.Tensor
    slots: tf.Tensor

    @classmethod
    def from_row_splits(cls, row_splits: tf.Tensor) -> TokenLayout:
        """The layout of ragged rows with ``row_splits`` int64 [B + 1]."""
        row_splits = tf.cast(row_splits, tf.int64)
        lengths = row_splits[1:] - row_splits[:-1]
        longest = tf.reduce_max(tf.concat([lengths, tf.zeros([1], tf.int64)], axis=0))
        rows = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int64)
        position = tf.range(row_splits[-1], dtype=tf.int64) - tf.gather(row_splits, rows)
        return cls(lengths, longest, rows, rows * longest + position)

    @property
    def batch(self) -> tf.Tensor:
        """B, the number of captions."""
        return tf.size(self.lengths, out_type=tf.int64)


def _per_caption(flat: tf.Tensor, layout: TokenLayout, heads: int) -> tf.Tensor:
    """[T, heads * k] -> [B, heads, L, k], zeros at padding slots."""
    width = flat.shape[-1]
    padded = tf.scatter_nd(layout.slots[:, tf.newaxis], flat,
                           tf.stack([layout.batch * layout.longest, width]))
    padded = tf.reshape(padded, [layout.batch, layout.longest, heads, width // heads])
    return tf.transpose(padded, [0, 2, 1, 3])


def attention(block: minilm.TransformerBlock, flat: tf.Tensor, layout: TokenLayout,
              policy: Policy) -> tf.Tensor:
    """The block's multi-head self-attention context of each token [T, H], per caption.

    Query, key and value come from one matmul over the concatenated kernels. Only the two
    per-caption products see padding (as ``TransformerBlock._attend``'s mask does, padded keys
    get the most negative float before the softmax); the softmax runs in float32.
    """
    config = block.config
    heads, size = config.num_attention_heads, config.hidden_size
    parts = (block.query, block.key, block.value)
    kernel = tf.concat([layer.kernel for layer in parts], axis=1)
    bias = tf.concat([layer.bias for layer in parts], axis=0)
    qkv = policy.cast(tf.nn.bias_add(policy.matmul(flat, kernel), bias))
    query, key, value = (_per_caption(part, layout, heads)
                         for part in tf.split(qkv, 3, axis=1))
    scores = tf.cast(tf.matmul(query, key, transpose_b=True), tf.float32)
    scores /= math.sqrt(size // heads)
    mask = tf.sequence_mask(layout.lengths, layout.longest, tf.float32)
    scores += (1.0 - mask[:, tf.newaxis, tf.newaxis, :]) * tf.float32.min
    context = tf.matmul(policy.cast(tf.nn.softmax(scores, axis=-1)), value)
    context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, size])
    return tf.gather(context, layout.slots)


def _norm(layer: keras.layers.LayerNormalization, flat: tf.Tensor) -> tf.Tensor:
    """A block's LayerNorm (built on [B, L, H], its axis fixed at 2) on [T, H], float32."""
    return layer(flat[tf.newaxis])[0]


def flat_block(block: minilm.TransformerBlock, flat: tf.Tensor, layout: TokenLayout,
               policy: Policy = FLOAT32) -> tf.Tensor:
    """``block`` applied to the flat token table ``flat`` float32 [T, H]; float32 [T, H].

    Same as ``block(padded, mask)`` at the real tokens, with the block's variables.
    """
    context = policy.dense(block.attention_output, attention(block, flat, layout, policy))
    hidden = _norm(block.attention_norm, flat + context)
    inner = tf.nn.gelu(policy.dense(block.intermediate, hidden), approximate=False)
    return _norm(block.output_norm, hidden + policy.dense(block.output_dense, inner))


def mean_pool(flat: tf.Tensor, layout: TokenLayout) -> tf.Tensor:
    """Each caption's mean token state [B, H], L2-normalized (``masked_mean``'s 1e-9 clamp)."""
    total = tf.math.unsorted_segment_sum(flat, layout.rows, layout.batch)
    count = tf.maximum(tf.cast(layout.lengths, flat.dtype)[:, tf.newaxis], 1e-9)
    return tf.math.l2_normalize(total / count, axis=-1)


def flat_top(encoder: minilm.MiniLMEncoder, tokens: tf.RaggedTensor, first_block: int,
             policy: Policy = FLOAT32) -> tf.Tensor:
    """``encoder.top`` of ragged token states ``tokens`` float32 [B, (L), H]; float32 [B, H].

    ``tokens`` are the states after the encoder's lowest ``first_block`` layers, real tokens
    only (a ``FrozenPrefix`` table's rows).
    """
    layout = TokenLayout.from_row_splits(tokens.row_splits)
    flat = tokens.flat_values
    for block in encoder.blocks[first_block:]:
        flat = flat_block(block, flat, layout, policy)
    return mean_pool(flat, layout)


def embed_tokens(tower: keras.Model, tokens: tf.RaggedTensor, first_block: int,
                 policy: Policy = FLOAT32) -> tf.Tensor:
    """A ``minilm`` tower's embeddings [B, d] of ragged frozen-bottom states ``tokens``.

    The top layers (``flat_top``), then the tower's projection (in the policy's precision)
    and its L2 normalization.
    """
    sentence = flat_top(tower.encoder, tokens, first_block, policy)
    projected = policy.dense(tower.get_layer("projection"), sentence)
    return tower.get_layer("l2_normalize")(projected)


class FlatPrefix(tf.Module):
    """A ``FrozenPrefix``'s rows embedded by ``embed_tokens``: its ``embed`` without padding.

    Wraps the computed table (no second bottom pass); ``TrainingRows(text_prefix=...)`` takes
    it where it takes the ``FrozenPrefix``.
    """

    def __init__(self, prefix: frozen_prefix.FrozenPrefix, policy: Policy = FLOAT32):
        super().__init__(name="flat_prefix")
        self.prefix, self.policy = prefix, policy
        self.tower, self.first_block = prefix.tower, prefix.first_block

    def tokens(self, index: tf.Tensor) -> tf.RaggedTensor:
        """The frozen-bottom states of input rows ``index`` [B]: float32 [B, (L), H]."""
        return self.prefix.tokens(tf.gather(self.prefix.position, index))

    def embed(self, index: tf.Tensor) -> tf.Tensor:
        """Input rows ``index`` [B] -> the tower's embeddings [B, d]."""
        return embed_tokens(self.tower, self.tokens(index), self.first_block, self.policy)
