"""primitive_matmul.matmul: tf.matmul's values and gradients, run as a BatchMatMul op."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer import primitive_matmul


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_values_and_gradients_match_tf_matmul(transpose_a, transpose_b):
    rng = np.random.default_rng(0)
    a = tf.constant(rng.normal(size=(5, 3) if transpose_a else (3, 5)), tf.float32)
    b = tf.constant(rng.normal(size=(4, 5) if transpose_b else (5, 4)), tf.float32)
    results = []
    for fn in (tf.matmul, primitive_matmul.matmul):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            product = fn(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
            loss = tf.reduce_sum(product * tf.range(12, dtype=tf.float32)[:, None][:3])
        results.append([product, *tape.gradient(loss, [a, b])])
    assert results[1][0].shape == (3, 4)
    for ours, theirs in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_runs_as_batch_matmul():
    graph = tf.function(primitive_matmul.matmul).get_concrete_function(
        tf.TensorSpec([2, 3]), tf.TensorSpec([4, 3]), transpose_b=True).graph
    kinds = {op.type for op in graph.get_operations()}
    assert kinds & {"BatchMatMulV2", "BatchMatMulV3"}
    assert "MatMul" not in kinds
