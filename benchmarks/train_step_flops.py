"""FLOPs of the Trainer's step on the default ``minilm`` tower, counted from the shapes.

Matmuls only (2 n k m each); element-wise work (LayerNorm, GELU, softmax, Adam) is left out.
A trained MiniLM layer on R token rows of B captions, the longest L:

- forward: query/key/value ``2 R H 3H``, attention output ``2 R H H``, feed-forward
  ``2 R H I`` twice, and per caption ``Q K^T`` and ``P V``, ``2 B L L H`` each;
- backward: each product's weight gradient and input gradient, as much again each, except the
  input gradient of the bottom trained layer's query/key/value: its input is the cached frozen
  bottom, a constant.

R is B L on padded captions and the number of real tokens on the flat table; attention is per
caption, padded, either way. The rest of the step: the text projection H -> d (forward, weight
and input gradients), the linear image tower D -> d (forward and weight gradient: image
features are constants) and the in-batch mining scores B B d (no gradient).
"""

from __future__ import annotations

import numpy as np

from trainer.config import TrainerConfig

HIDDEN = 384  # MiniLM-L6 hidden size H
INTERMEDIATE = 1536  # its feed-forward size I


def layer_flops(config: TrainerConfig, lengths: np.ndarray, padded: bool) -> float:
    """FLOPs of the trained MiniLM layers' forward and gradients on captions of ``lengths``.

    Args:
        config: ``minilm_trainable_layers`` layers are trained.
        lengths: the batch's caption lengths in tokens [B].
        padded: rows padded to the longest caption (else the real tokens only).

    """
    batch, longest = len(lengths), int(np.max(lengths))
    rows = batch * longest if padded else int(np.sum(lengths))
    qkv = 2.0 * rows * HIDDEN * 3 * HIDDEN
    rest = 2.0 * rows * HIDDEN * (HIDDEN + 2 * INTERMEDIATE)
    attention = 2 * 2.0 * batch * longest * longest * HIDDEN
    per_layer = 3 * (qkv + rest + attention)
    return config.minilm_trainable_layers * per_layer - qkv


def step_flops(config: TrainerConfig, lengths: np.ndarray, padded: bool,
               image_dim: int = 1280) -> float:
    """FLOPs of one training step: ``layer_flops``, projection, image tower and mining scores."""
    batch, d = len(lengths), config.embedding_dim
    projection = 3 * 2.0 * batch * HIDDEN * d
    image = 2 * 2.0 * batch * image_dim * d
    mining = 2.0 * batch * batch * d
    return layer_flops(config, lengths, padded) + projection + image + mining


def padding_share(lengths: np.ndarray) -> float:
    """The share of a padded batch's rows that are padding: 1 - sum / (B * longest)."""
    return 1.0 - float(np.sum(lengths)) / (len(lengths) * float(np.max(lengths)))
