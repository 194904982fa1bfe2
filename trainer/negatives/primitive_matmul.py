"""Mid-size matmuls through oneDNN's matmul primitive: ``matmul`` and the ``Dense`` layer.

TensorFlow's oneDNN build runs a plain ``MatMul`` with oneDNN's sgemm and a ``BatchMatMul`` with
its matmul primitive. For the mid-size products of a training step (mining scores of B <= 512
queries against a chunk of up to 2048 rows, the image kernel's gradient over ~900 rows, a
tower's 512-row batch and its gradient) the primitive is faster than sgemm on the project's
2-core CPU host, side by side, and loses less when the host is loaded (docs/perf.md). For
large products (6000 x 1280 x 1024, 30000 x 384 x 1024) sgemm is as fast or faster: ``Dense``
keeps ``MatMul`` for inputs of more than ``MAX_PRIMITIVE_ROWS`` rows or of unknown row count
(serving signatures).
Scores through a narrow linear head (``trainer.mining``: 384-wide caption inputs) stay on sgemm
too, which is faster for that inner dimension.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

MAX_PRIMITIVE_ROWS = 4096


def matmul(a: tf.Tensor, b: tf.Tensor, transpose_a: bool = False,
           transpose_b: bool = False) -> tf.Tensor:
    """``a @ b`` of 2-D tensors (optionally transposed), as a one-batch ``BatchMatMul``.

    Same shapes, values (up to float32 rounding) and gradients as ``tf.matmul``. The batch axis
    is added and removed with ``expand_dims``/``squeeze``, whose gradients are reshapes (the
    ``[None]``/``[0]`` slices would add ``StridedSliceGrad`` copies to every step).
    """
    product = tf.matmul(tf.expand_dims(a, 0), tf.expand_dims(b, 0), transpose_a=transpose_a,
                        transpose_b=transpose_b)
    return tf.squeeze(product, 0)


class Dense(keras.layers.Dense):
    """``keras.layers.Dense`` whose product runs through ``matmul`` for a mid-size 2-D batch.

    Same variables, names (the class name keeps Keras's default ``dense``, ``dense_1``...),
    values and gradients as ``keras.layers.Dense``; other inputs take its own path.
    """

    def call(self, inputs):
        """``activation(inputs @ kernel + bias)`` of [B, D] inputs -> [B, units]."""
        rows = inputs.shape[0] if isinstance(inputs, tf.Tensor) else None
        if inputs.shape.rank != 2 or rows is None or rows > MAX_PRIMITIVE_ROWS:
            return super().call(inputs)
        outputs = matmul(tf.cast(inputs, self.compute_dtype), self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)
