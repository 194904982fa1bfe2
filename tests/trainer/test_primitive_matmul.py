"""primitive_matmul: tf.matmul's and keras Dense's values and gradients, run as BatchMatMul ops."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from trainer.negatives import primitive_matmul


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


def test_gradient_has_no_slice_copies():
    # expand_dims/squeeze: their gradients are reshapes, not StridedSliceGrad copies.
    def loss(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            value = tf.reduce_sum(primitive_matmul.matmul(a, b))
        return tape.gradient(value, [a, b])

    graph = tf.function(loss).get_concrete_function(tf.TensorSpec([2, 3]),
                                                     tf.TensorSpec([3, 4])).graph
    kinds = {op.type for op in graph.get_operations()}
    assert not kinds & {"StridedSlice", "StridedSliceGrad"}


def _op_types(layer, spec):
    graph = tf.function(layer).get_concrete_function(spec).graph
    return {op.type for op in graph.get_operations()}


def test_dense_matches_keras_dense_values_gradients_and_names():
    x = tf.constant(np.random.default_rng(1).normal(size=(6, 3)), tf.float32)
    theirs = tf_keras.layers.Dense(4, activation="relu")
    ours = primitive_matmul.Dense(4, activation="relu")
    theirs(x), ours(x)
    ours.set_weights(theirs.get_weights())
    results = []
    for layer in (theirs, ours):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * tf.range(4, dtype=tf.float32))
        results.append([y, *tape.gradient(loss, layer.trainable_variables)])
    for a, b in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert ours.name.startswith("dense")  # Keras's default name, as keras Dense's
    assert [v.name.split("/")[-1] for v in ours.weights] == ["kernel:0", "bias:0"]


def test_dense_uses_the_primitive_for_mid_size_batches_only():
    layer = primitive_matmul.Dense(2, use_bias=False)
    layer(tf.zeros([1, 3]))
    mid = _op_types(layer, tf.TensorSpec([512, 3]))
    assert mid & {"BatchMatMulV2", "BatchMatMulV3"} and "MatMul" not in mid
    for rows in (None, primitive_matmul.MAX_PRIMITIVE_ROWS + 1):
        kinds = _op_types(layer, tf.TensorSpec([rows, 3]))
        assert "MatMul" in kinds and not kinds & {"BatchMatMulV2", "BatchMatMulV3"}
