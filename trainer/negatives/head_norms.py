"""Norms of a linear head's outputs from its inputs, for scoring a bank of head inputs.

When a bank row's embedding is ``normalize(x_n @ W)`` with inputs x_n [p] and a
head kernel W [p, d] with p < d (a linear tower over precomputed features), the bank can hold the
inputs instead of the embeddings: ``<q, normalize(x_n W)> = <q W^T, x_n> / |x_n F|`` with
F F^T = G = W W^T [p, p] (F: G's lower-triangular Cholesky factor, so that a row's norm is one
``reduce_euclidean_norm`` pass instead of a product and a sum; ``gram_factor``). Scoring then
costs p/d of the embedding matmul and nothing needs re-encoding, with the same negatives (up to
float32 rounding). As F is lower triangular, ``|x F|^2 = |x F[:, :s]|^2 + |x[:, s:] F[s:, s:]|^2``
for s = p // 2: the norms take 3/4 of the multiply-adds of ``x F`` (``head_tail``).
"""

from __future__ import annotations

import tensorflow as tf

_NORM_EPSILON = 1e-12  # the epsilon of trainer.model.towers.l2_normalize


def gram_factor(kernel: tf.Tensor) -> tf.Tensor:
    """Lower-triangular F [p, p] with F F^T = W W^T for a kernel W [p, d]: |x W| = |x F|.

    The Cholesky factor when W W^T is positive definite (the rule for p < d). For a singular
    W W^T (a rank-deficient kernel, e.g. all zeros), where Cholesky returns NaN, the
    eigendecomposition's R = V sqrt(max(lambda, 0)) made triangular: with R^T = Q U (QR),
    F = U^T is lower triangular and F F^T = U^T U = R R^T.
    """
    gram = tf.matmul(kernel, kernel, transpose_b=True)
    cholesky = tf.linalg.cholesky(gram)

    def from_eigenvectors() -> tf.Tensor:
        values, vectors = tf.linalg.eigh(gram)
        root = vectors * tf.sqrt(tf.maximum(values, 0.0))[None, :]
        return tf.transpose(tf.linalg.qr(tf.transpose(root))[1])

    return tf.cond(tf.reduce_all(tf.math.is_finite(cholesky)), lambda: cholesky,
                   from_eigenvectors)


def head_tail(inputs: tf.Tensor) -> tf.Tensor:
    """``inputs[:, p // 2:]`` [N, p - p // 2] as a tensor of its own: the ``tail`` of the norms.

    A caller that scores the same head inputs at every step keeps it (a column slice is a copy).
    """
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    return inputs[:, inputs.shape[1] // 2:]


def inverse_norms(rows: tf.Tensor, factor: tuple[tf.Tensor, tf.Tensor] | None = None,
                   tail: tf.Tensor | None = None) -> tf.Tensor:
    """1 / |x_n F| of rows x_n [c, p] given ``gram_factor`` F [p, p], or 1 / |x_n| without F.

    F is lower triangular, so with s = p // 2, ``|x F|^2 = |x F[:, :s]|^2 +
    |x[:, s:] F[s:, s:]|^2``: 3/4 of the multiply-adds of ``x F``, and faster than the whole
    factor where 3 or 4 blocks are not. ``factor`` holds those two blocks (``factor_blocks``) and
    ``tail`` [c, p - s] the rows' last columns. One ``reduce_euclidean_norm`` pass per product:
    square-then-sum would take two. With ``l2_normalize``'s epsilon
    (an all-zero row scores 0, never NaN).
    """
    if factor is None:
        norms = tf.math.reduce_euclidean_norm(rows, axis=1)
    else:
        left, corner = factor
        head_norms = tf.math.reduce_euclidean_norm(tf.matmul(rows, left), axis=1)
        tail_norms = tf.math.reduce_euclidean_norm(tf.matmul(tail, corner), axis=1)
        norms = tf.sqrt(tf.square(head_norms) + tf.square(tail_norms))
    return tf.math.reciprocal(tf.maximum(norms, _NORM_EPSILON ** 0.5))


def factor_blocks(factor: tf.Tensor, tail_width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``(F[:, :s], F[s:, s:])`` of a lower-triangular F [p, p], s = p - ``tail_width``.

    ``tail_width``: the width of the rows' ``head_tail``, which fixes s.
    """
    split = factor.shape[0] - tail_width
    return factor[:, :split], factor[split:, split:]
