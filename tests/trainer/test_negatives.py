"""Each negative strategy on a tiny training set whose negatives are computed by hand.

Three images and six captions, two per image, in 2-d; the towers are linear with kernel
[I | 0] (d >= 2), so every embedding is its features padded with zeros and normalized:

    images   i0 = (1, 0)      i1 = (0, 1)        i2 = (.6, .8)
    captions c0 = (1, 0)      c1 = (.8, .6)      (image 0)
             c2 = (0, 1)      c3 = (.96, .28)    (image 1)
             c4 = (.8, .6)    c5 = (.28, .96)    (image 2)
"""

import numpy as np
import pytest
import tensorflow as tf

from trainer import features, losses
from trainer.config import TrainerConfig
from trainer.inputs.data import SplitTables
from trainer.inputs.training_rows import TrainingRows
from trainer.model import towers
from trainer.negatives import strategies as negatives

IMAGES = np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)
CAPTIONS = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.96, 0.28], [0.8, 0.6], [0.28, 0.96]],
                    np.float32)
CAPTION_IMAGE = np.array([0, 0, 1, 1, 2, 2])


def _rows(dim: int = 2, **overrides) -> tuple[TrainerConfig, TrainingRows]:
    """``TrainingRows`` of the hand-made set with [I | 0] kernels (or random ones: ``seed``)."""
    seed = overrides.pop("seed", None)
    config = TrainerConfig(**{"image_tower": "linear", "text_tower": "linear",
                              "embedding_dim": dim, "mining_chunk_size": 2,
                              "eval_batch_size": 4, **overrides})
    image_tower, text_tower = towers.build_towers(config, 0, 2, 2)
    rng = np.random.default_rng(seed)
    for tower in (image_tower, text_tower):
        kernel = np.eye(2, dim) if seed is None else rng.normal(size=(2, dim))
        tower.project.kernel.assign(kernel.astype(np.float32))
    split = SplitTables(IMAGES, np.array([b"i0", b"i1", b"i2"]),
                        {features.CAPTION_FEATURES_XF: CAPTIONS}, CAPTION_IMAGE,
                        np.array([f"c{n}".encode() for n in range(6)]))
    return config, TrainingRows(image_tower, text_tower, split)


def _batch(rows: TrainingRows, caption_index) -> negatives.Batch:
    caption_index = tf.constant(caption_index, tf.int64)
    return negatives.Batch(caption_index, tf.gather(rows.text_image_index, caption_index),
                           rows.captions(caption_index, training=True))


def _assert_negatives(got: negatives.Negatives, image_row, caption_row, is_pair, dim: int):
    np.testing.assert_array_equal(got.image_row, image_row)
    np.testing.assert_array_equal(got.caption_row, caption_row)
    np.testing.assert_array_equal(got.is_pair, is_pair)
    pad = np.zeros((len(image_row), dim - 2), np.float32)
    np.testing.assert_allclose(got.image, np.hstack([IMAGES[image_row], pad]), atol=1e-6)
    np.testing.assert_allclose(got.text, np.hstack([CAPTIONS[caption_row], pad]), atol=1e-6)


def test_strategy_follows_the_configured_mining_mode():
    cases = {("sh", "global", 1): ("none", negatives.NoMining),
             ("fhn", "in_batch", 3): ("in_batch", negatives.InBatch),
             ("hn", "global", 1): ("exact", negatives.ExactGlobal),
             ("fhn", "global", 3): ("bank", negatives.Bank)}
    for (loss, mining, refresh_steps), (mode, kind) in cases.items():
        config, rows = _rows(loss=loss, mining=mining, refresh_steps=refresh_steps)
        assert config.mining_mode == mode
        assert isinstance(negatives.for_config(config, rows), kind), mode


def test_no_mining_returns_only_the_batch_images():
    config, rows = _rows(loss="sh")
    got = negatives.for_config(config, rows)(_batch(rows, [0, 3, 5]))
    np.testing.assert_allclose(got.batch_image, IMAGES[[0, 1, 2]], atol=1e-6)
    assert got.image is None and got.text is None and got.is_pair is None


def test_in_batch_by_hand():
    # batch c0, c2, c4 with images i0, i1, i2; s(i_r, c_k) = [[1, 0, .8], [0, 1, .6],
    # [.6, .8, .96]]. Caption columns: c0 -> i2 (.6), c2 -> i2 (.8), c4 -> i0 (.8);
    # image rows: i0 -> c4 (.8), i1 -> c4 (.6), i2 -> c2 (.8). (i2, c4) is a pair.
    config, rows = _rows(mining="in_batch")
    got = negatives.for_config(config, rows)(_batch(rows, [0, 2, 4]))
    np.testing.assert_allclose(got.batch_image, IMAGES, atol=1e-6)
    _assert_negatives(got, [2, 2, 0], [4, 4, 2], [True, True, False], dim=2)


@pytest.mark.parametrize("dim", [2, 3])  # d = 2: scored through x @ W; d = 3: input space
def test_exact_global_by_hand(dim):
    # batch c0 (image 0), c2 (image 1). Images for c0: i1 0, i2 .6 -> i2; for c2: i0 0,
    # i2 .8 -> i2. Captions for i0: c2 0, c3 .96, c4 .8, c5 .28 -> c3 (image 1, no pair);
    # for i1: c0 0, c1 .6, c4 .6, c5 .96 -> c5 (image 2: (i2, c5) is a pair).
    config, rows = _rows(dim, mining="global")
    strategy = negatives.for_config(config, rows)
    assert (strategy.reused_head is not None) == (dim == 2)
    got = strategy(_batch(rows, [0, 2]))
    _assert_negatives(got, [2, 2], [3, 5], [False, True], dim)


def _loss_and_gradients(rows: TrainingRows, mine):
    variables = rows.image_tower.trainable_variables + rows.text_tower.trainable_variables
    with tf.GradientTape() as tape:
        batch = _batch(rows, [0, 1, 2, 4])
        got = mine(batch)
        loss = losses.triplet_loss("fhn", image=got.batch_image, text=batch.text,
                                   neg_image=got.image, neg_text=got.text,
                                   neg_is_pair=got.is_pair)
    return float(loss), tape.gradient(loss, variables), got


def test_exact_global_images_read_from_the_products_train_as_the_tower_would():
    config, rows = _rows(2, mining="global", seed=1)
    strategy = negatives.for_config(config, rows)
    assert strategy.reused_head is not None
    loss, gradients, got = _loss_and_gradients(rows, strategy)

    def through_the_tower(batch):  # the same rows, embedded by running the image tower
        return got._replace(batch_image=rows.images(batch.image_index, training=True),
                            image=rows.images(got.image_row, training=True),
                            text=rows.captions(got.caption_row, training=True))

    tower_loss, tower_gradients, _ = _loss_and_gradients(rows, through_the_tower)
    assert loss == pytest.approx(tower_loss, rel=1e-5) and loss > 0
    for reused, tower in zip(gradients, tower_gradients, strict=True):
        np.testing.assert_allclose(reused, tower, atol=1e-6)
        assert np.abs(tower).max() > 1e-3


def test_bank_mines_stored_embeddings_and_refreshes_every_k_calls():
    config, rows = _rows(mining="global", refresh_steps=2)
    strategy = negatives.for_config(config, rows)
    # first call: refreshed, so the search equals the exact one (see test_exact_global_by_hand)
    _assert_negatives(strategy(_batch(rows, [0, 2])), [2, 2], [3, 5], [False, True], dim=2)
    np.testing.assert_allclose(strategy.bank.image, IMAGES, atol=1e-6)
    rows.image_tower.project.kernel.assign([[0.0, 1.0], [1.0, 0.0]])  # swaps the image axes
    strategy(_batch(rows, [4]))  # second call: only the batch's image row 2 is re-encoded
    np.testing.assert_allclose(strategy.bank.image, [[1, 0], [0, 1], [0.8, 0.6]], atol=1e-6)
    strategy(_batch(rows, [4]))  # third call: the whole bank is re-encoded
    np.testing.assert_allclose(strategy.bank.image, IMAGES[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(strategy.bank.text, CAPTIONS, atol=1e-6)
