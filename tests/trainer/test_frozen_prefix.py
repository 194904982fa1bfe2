"""The cached frozen bottom of the ``minilm`` tower: same embeddings and gradients as the full
tower, and the Trainer's fine-tuning step at the lower encoder rate through it."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import TrainerConfig
from trainer.inputs import data, frozen_prefix
from trainer.inputs.training_rows import TrainingRows
from trainer.model import minilm, towers
from trainer.tokens import wordpiece
from trainer.train import training

CAPTIONS = ["A dog runs on the beach .", "Two children in red coats play in the deep snow .",
            "A man", "A brown dog is jumping over a log in the woods near a small river .",
            "People sit .", "A girl in a pink dress climbs the wooden stairs of a playhouse ."]


def _text(captions=CAPTIONS, max_tokens=24) -> dict[str, np.ndarray]:
    tokens = wordpiece.wordpiece_features(tf.constant(captions), max_tokens=max_tokens)
    return {key: value.numpy() for key, value in tokens.items()}


@pytest.fixture(scope="module")
def tower():
    """Pretrained weights, d = 8, top 2 of 6 layers trainable (loading is the slow part)."""
    return minilm.build_minilm_text_tower(d=8, trainable_layers=2)


def test_cached_bottom_gives_the_towers_embeddings_and_gradients(tower):
    text = _text()
    prefix = frozen_prefix.FrozenPrefix(tower, text, batch_size=4)  # 2 length-sorted batches
    assert prefix.first_block == 4
    assert prefix.values.shape == (text[wordpiece.WORDPIECE_MASK_XF].sum(), 384)  # real tokens
    index = np.array([5, 0, 2])
    weights = tf.constant(np.random.default_rng(0).normal(size=(3, 8)), tf.float32)
    results = []
    for embed in (lambda: prefix.embed(tf.constant(index)),
                  lambda: tower({key: value[index] for key, value in text.items()})):
        with tf.GradientTape() as tape:
            embedding = embed()
            loss = tf.reduce_sum(embedding * weights)
        results.append((embedding, tape.gradient(loss, tower.trainable_variables)))
    (cached, cached_grads), (full, full_grads) = results
    np.testing.assert_allclose(cached.numpy(), full.numpy(), atol=1e-5)
    assert len(cached_grads) == 2 * 16 + 2  # two layers + projection kernel and bias
    for got, expected in zip(cached_grads, full_grads, strict=True):
        # the cached states came from other batches (other padded lengths): float32 rounding
        # differs, so gradients agree to 1e-5, relative to the largest element if that is > 1
        scale = max(1.0, np.abs(expected.numpy()).max())
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5 * scale)
    np.testing.assert_allclose(prefix.embed_all(), tower(text).numpy(), atol=1e-5)


def test_frozen_blocks_and_when_the_trainer_caches(tower):
    assert frozen_prefix.frozen_blocks(tower) == 4
    config = TrainerConfig(text_tower="minilm", minilm_trainable_layers=6)
    assert frozen_prefix.for_tower(config, tower, _text(), 4) is None  # nothing worth caching
    assert frozen_prefix.for_tower(TrainerConfig(text_tower="mean"), None, _text(), 4) is None
    tower.encoder.blocks[5].trainable = False  # a frozen layer above a trained one
    try:
        with pytest.raises(ValueError, match=r"layers trainable: \[False, False, False, False, "
                                             r"True, False\]"):
            frozen_prefix.frozen_blocks(tower)
    finally:
        tower.encoder.blocks[5].trainable = True


@pytest.mark.parametrize("mining", ["in_batch", "global"])
def test_trainer_step_moves_the_encoder_at_the_lower_rate_through_the_cache(mining):
    config = TrainerConfig(text_tower="minilm", minilm_trainable_layers=1, embedding_dim=8,
                           batch_size=4, learning_rate=1e-3, minilm_lr_multiplier=0.1,
                           mining=mining)
    image_tower, text_tower = towers.build_towers(config, 0, image_dim=5)
    rng = np.random.default_rng(0)
    split = data.SplitTables(
        image_features=rng.normal(size=(3, 5)).astype(np.float32),
        image_ids=np.array([b"a.jpg", b"b.jpg", b"c.jpg"]), text=_text(),
        text_image_index=np.array([0, 0, 1, 1, 2, 2]),
        caption_ids=np.array([f"{i}".encode() for i in range(6)]))
    variables = image_tower.variables + text_tower.variables
    before = [v.numpy() for v in variables]
    after = {}
    for cache in (False, True):
        for variable, value in zip(variables, before, strict=True):
            variable.assign(value)
        rows = (TrainingRows.for_training(config, image_tower, text_tower, split) if cache
                else TrainingRows(image_tower, text_tower, split))
        assert (rows.text_prefix is not None) == cache
        trainer = training.PairTrainer(config, rows, 1)
        loss = trainer.train_step(tf.constant([0, 2, 4, 5], tf.int64))["loss"]
        after[cache] = (float(loss), [v.numpy() for v in variables])
    assert after[True][0] == pytest.approx(after[False][0], abs=1e-6)
    for variable, start, cached, full in zip(variables, before, after[True][1], after[False][1],
                                             strict=True):
        np.testing.assert_allclose(cached, full, atol=1e-6, err_msg=variable.name)
        step = np.abs(cached - start).max()
        if "/layer_5/key/bias" in variable.name:  # zero gradient: softmax ignores a key shift
            assert step < 1e-6, variable.name
        elif "/layer_5/" in variable.name:  # the fine-tuned layer: Adam's first step ~lr * 0.1
            assert step == pytest.approx(1e-4, rel=1e-2), variable.name
        elif "projection" in variable.name or "image_tower" in variable.name:
            assert step == pytest.approx(1e-3, rel=1e-2), variable.name
        else:  # embeddings and layers 0-4 are frozen
            assert step == 0, variable.name
