"""The optimizer: step schedule, and the lower encoder rate of ``EncoderRateAdam``.

Adam's first step is ``lr * g / (|g| + eps)`` per element, about ``lr * sign(g)``: after one
step every variable element with a clear gradient has moved by its group's learning rate.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.config import TrainerConfig
from trainer.train import optimization

# decay after epochs // 2 = 1 epoch = 2 steps
CONFIG = TrainerConfig(learning_rate=1e-2, epochs=2, lr_decay_factor=0.5, clip_norm=1.0,
                       minilm_lr_multiplier=0.1)


def test_step_schedule_scales_both_phases():
    schedule = optimization.step_schedule(CONFIG, steps_per_epoch=2, scale=0.1)
    assert [float(schedule(step)) for step in (0, 2, 3)] == pytest.approx([1e-3, 1e-3, 5e-4])


def test_first_step_moves_encoder_variables_by_the_lower_rate_after_one_clipping():
    main, encoder = tf.Variable([1.0, -2.0]), tf.Variable([0.5, 0.25])
    optimizer = optimization.make_optimizer(
        CONFIG, optimization.step_schedule(CONFIG, 2), 2, [encoder])
    assert isinstance(optimizer, optimization.EncoderRateAdam)
    # global norm ~5.03 > clip_norm 1: clipping scales g, Adam's first step stays ~lr * sign(g)
    optimizer.apply_gradients([(tf.constant([3.0, -4.0]), main),
                               (tf.constant([0.5, -0.01]), encoder)])
    np.testing.assert_allclose(main.numpy(), [1.0 - 1e-2, -2.0 + 1e-2], atol=1e-5)
    np.testing.assert_allclose(encoder.numpy(), [0.5 - 1e-3, 0.25 + 1e-3], atol=1e-5)
    assert int(optimizer.iterations) == 1 and int(optimizer.encoder.iterations) == 1
    assert float(optimizer.learning_rate) == pytest.approx(1e-2)


def _run(make, steps: int = 4):
    """Applies the same random gradients (norms 0.2 to 5: clipped sometimes) ``steps`` times."""
    rng = np.random.default_rng(0)
    variables = [tf.Variable(rng.normal(size=shape).astype(np.float32))
                 for shape in ((3,), (2, 2), (4,))]
    optimizer = make(variables)
    for step in range(steps):
        scale = (0.2, 5.0)[step % 2]
        grads = [tf.constant(scale * rng.normal(size=v.shape).astype(np.float32))
                 for v in variables]
        optimizer.apply_gradients(zip(grads, variables, strict=True))
    return [v.numpy() for v in variables]


def test_two_rates_with_multiplier_one_equal_single_adam_bit_for_bit():
    same = dataclasses.replace(CONFIG, minilm_lr_multiplier=1.0)
    schedule = optimization.step_schedule(same, 2)
    single = _run(lambda v: optimization.FusedAdam(schedule, global_clipnorm=same.clip_norm))
    split = _run(lambda v: optimization.make_optimizer(same, schedule, 2, v[1:]))
    for expected, got in zip(single, split, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_without_encoder_variables_the_optimizer_is_the_single_clipped_adam():
    schedule = optimization.step_schedule(CONFIG, 2)
    optimizer = optimization.make_optimizer(CONFIG, schedule, 2)
    assert type(optimizer) is optimization.FusedAdam
    assert optimizer.global_clipnorm == CONFIG.clip_norm
    reference = _run(lambda v: optimization.FusedAdam(schedule, global_clipnorm=CONFIG.clip_norm))
    made = _run(lambda v: optimization.make_optimizer(CONFIG, schedule, 2))
    for expected, got in zip(reference, made, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_fused_adam_steps_as_keras_adam_with_schedule_and_clipping():
    schedule = optimization.step_schedule(CONFIG, 2)
    keras_adam = _run(lambda v: keras.optimizers.Adam(schedule, global_clipnorm=CONFIG.clip_norm),
                      steps=6)
    fused = _run(lambda v: optimization.FusedAdam(schedule, global_clipnorm=CONFIG.clip_norm),
                 steps=6)
    start = _run(lambda v: optimization.FusedAdam(schedule), steps=0)
    for expected, got, initial in zip(keras_adam, fused, start, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
        assert np.abs(got - initial).min() > 1e-4  # every element moved


def test_fused_adam_keeps_keras_update_for_sparse_gradients():
    results = []
    for make in (keras.optimizers.Adam, optimization.FusedAdam):
        table = tf.Variable(np.arange(8, dtype=np.float32).reshape(4, 2))
        optimizer = make(0.1)
        for _ in range(2):
            optimizer.apply_gradients([(tf.IndexedSlices(tf.ones([1, 2]), tf.constant([2])),
                                        table)])
        results.append(table.numpy())
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[1][[0, 1, 3]], [[0, 1], [2, 3], [6, 7]])
