"""``matmul`` through oneDNN's matmul primitive, for the training step's hot products.

TensorFlow's oneDNN build runs a plain ``MatMul`` with oneDNN's sgemm and a ``BatchMatMul`` with
its matmul primitive. For the mid-size products of a training step (mining scores of B <= 512
queries against a chunk of up to 2048 rows, the image kernel's gradient over ~900 rows) the
primitive took 20-35 % less time on this 2-core machine, side by side (e.g. 9.7 vs 13.1 ms for
512 x 2048 x 1024), and held up better when the host was loaded; for the large products (the
image products x @ W, 6000 x 1280 x 1024) sgemm was as fast or faster, so those stay ``MatMul``.
"""

from __future__ import annotations

import tensorflow as tf


def matmul(a: tf.Tensor, b: tf.Tensor, transpose_a: bool = False,
           transpose_b: bool = False) -> tf.Tensor:
    """``a @ b`` of 2-D tensors (optionally transposed), as a one-batch ``BatchMatMul``.

    Same shapes, values (up to float32 rounding) and gradients as ``tf.matmul``.
    """
    return tf.matmul(a[None], b[None], transpose_a=transpose_a, transpose_b=transpose_b)[0]
