"""Towers: L2-normalized outputs, masking, empty-caption guard, bias choices, the factory."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import config as config_lib
from trainer import features
from trainer.model import towers

TOKENS, LENGTH = features.CAPTION_TOKENS_XF, features.CAPTION_LENGTH_XF


def _text(tokens, lengths):
    return {TOKENS: tf.constant(tokens, tf.int64), LENGTH: tf.constant(lengths, tf.int64)}


def _mean_tower():
    tower = towers.TokenTextTower("mean", vocab_size=4, embedding_dim=2, word_dim=2)
    tower(_text([[1]], [1]))
    # token 1 -> (1, 0), token 2 -> (0, 1), token 3 -> (3, 3); identity projection, no bias
    tower.embed.set_weights([np.array([[9, 9], [1, 0], [0, 1], [3, 3]], np.float32)])
    tower.project.set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])
    return tower


def test_mean_pooling_by_hand_ignores_tokens_past_the_length():
    tower = _mean_tower()
    out = tower(_text([[1, 2, 3, 3], [1, 1, 3, 3], [2, 0, 0, 0]], [2, 2, 1])).numpy()
    # mean((1,0),(0,1)) = (.5,.5) -> (.7071,.7071); mean((1,0),(1,0)) = (1,0); (0,1)
    np.testing.assert_allclose(out, [[0.70710677, 0.70710677], [1, 0], [0, 1]], atol=1e-6)


def test_empty_caption_is_finite_not_nan():
    out = _mean_tower()(_text([[0, 0, 0, 0]], [0])).numpy()
    np.testing.assert_array_equal(out, [[0.0, 0.0]])  # zero pooled vector, zero bias
    gru = towers.TokenTextTower("gru", vocab_size=4, embedding_dim=3, word_dim=2, gru_units=2)
    assert np.all(np.isfinite(gru(_text([[0, 0, 0]], [0])).numpy()))


def test_gru_masks_padding_and_normalizes():
    gru = towers.TokenTextTower("gru", vocab_size=5, embedding_dim=3, word_dim=2, gru_units=2)
    clean = gru(_text([[1, 2, 0, 0]], [2])).numpy()
    noisy = gru(_text([[1, 2, 4, 3]], [2])).numpy()
    longer = gru(_text([[1, 2, 4, 3]], [4])).numpy()
    np.testing.assert_allclose(clean, noisy, atol=1e-6)
    assert not np.allclose(clean, longer, atol=1e-3)
    assert np.linalg.norm(clean) == pytest.approx(1.0, abs=1e-5)


def test_image_towers_normalize_and_linear_has_no_bias():
    linear = towers.ImageTower("linear", embedding_dim=4)
    out = linear(tf.random.normal([3, 5])).numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert len(linear.trainable_variables) == 1  # kernel only
    np.testing.assert_array_equal(linear(tf.zeros([1, 5])).numpy(), [[0, 0, 0, 0]])
    mlp = towers.ImageTower("mlp", embedding_dim=4, hidden=6)
    assert len(mlp(tf.zeros([1, 5])).shape) == 2 and len(mlp.trainable_variables) == 4


def test_factory_covers_every_configured_text_tower_and_builds():
    assert set(towers.TEXT_TOWER_BUILDERS) == set(config_lib.TEXT_TOWERS)
    assert set(towers.TEXT_TOWER_INPUTS) == set(config_lib.TEXT_TOWERS)
    cfg = config_lib.TrainerConfig(text_tower="linear", embedding_dim=4)
    image_tower, text_tower = towers.build_towers(cfg, 0, image_dim=5, caption_dim=3)
    out = text_tower({features.CAPTION_FEATURES_XF: tf.ones([2, 3])}).numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert image_tower(tf.ones([2, 5])).shape == (2, 4)
    with pytest.raises(ValueError, match="caption_features"):
        towers.build_towers(cfg, 0, image_dim=5)


def test_rows_of_products_have_the_values_and_kernel_gradient_of_multiplying_again():
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(5, 3)), tf.float32)
    kernel = tf.Variable(rng.normal(size=(3, 4)).astype(np.float32))
    rows = tf.constant([0, 2, 2, 4, 0, 2], tf.int64)  # repeated rows, as hard negatives repeat
    weights = tf.constant(rng.normal(size=(6, 4)), tf.float32)
    products = tf.matmul(inputs, kernel)
    results = []
    for read in (lambda: towers.rows_of_products(inputs, kernel, products, rows),
                 lambda: tf.matmul(tf.gather(inputs, rows), kernel)):
        with tf.GradientTape() as tape:
            value = read()
            loss = tf.reduce_sum(towers.l2_normalize(value) * weights)
        results.append((value.numpy(), tape.gradient(loss, kernel).numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)
    assert np.abs(results[0][1]).max() > 0.1
