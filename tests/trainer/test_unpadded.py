"""The fine-tuned MiniLM layer on the batch's real tokens: the padded step's losses and
gradients in float32, close to them in bfloat16."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from trainer import features, losses
from trainer.config import TrainerConfig
from trainer.inputs import data, frozen_prefix
from trainer.inputs.training_rows import TrainingRows
from trainer.model import minilm, precision, towers, unpadded
from trainer.model.precision import FLOAT32, Policy
from trainer.tokens import wordpiece
from trainer.train import evaluation, training

# Very unequal lengths: 4, 5, 49 and 16 WordPiece tokens ([CLS] and [SEP] included).
CAPTIONS = ["A man", "Two dogs .",
            "A brown dog is jumping over a log in the woods near a small river while two "
            "children in red coats watch from the wooden bridge and a girl in a pink dress "
            "climbs the wooden stairs of a small playhouse behind them in the rain .",
            "A girl in a pink dress climbs the wooden stairs of a playhouse ."]
BF16 = Policy("bfloat16", "test")


def _text(max_tokens: int = 64) -> dict[str, np.ndarray]:
    tokens = wordpiece.wordpiece_features(tf.constant(CAPTIONS), max_tokens=max_tokens)
    return {key: value.numpy() for key, value in tokens.items()}


@pytest.fixture(scope="module")
def tower():
    """Pretrained weights, d = 8, top 2 of 6 layers trainable (loading is the slow part)."""
    return minilm.build_minilm_text_tower(d=8, trainable_layers=2)


@pytest.fixture(scope="module")
def prefix(tower):
    return frozen_prefix.FrozenPrefix(tower, _text(), batch_size=2)


def _loss_and_gradients(tower, embed) -> tuple[np.ndarray, float, list[np.ndarray]]:
    """Embeddings, the F-HN loss against fixed images, and its gradients to the tower."""
    index = tf.constant([2, 0, 3, 1], tf.int64)
    image = tf.math.l2_normalize(
        tf.constant(np.random.default_rng(0).normal(size=(4, 8)), tf.float32), axis=-1)
    with tf.GradientTape() as tape:
        text = embed(index)
        loss = losses.triplet_loss("fhn", image, text, tf.roll(image, 1, 0),
                                   tf.roll(text, 1, 0), tf.zeros([4], tf.bool))
    gradients = tape.gradient(loss, tower.trainable_variables)
    return text.numpy(), float(loss), [g.numpy() for g in gradients]


def test_token_layout_places_each_token_in_its_padded_slot():
    layout = unpadded.TokenLayout.from_row_splits(tf.constant([0, 2, 2, 5], tf.int64))
    assert layout.lengths.numpy().tolist() == [2, 0, 3]
    assert int(layout.longest) == 3
    assert layout.rows.numpy().tolist() == [0, 0, 2, 2, 2]
    assert layout.slots.numpy().tolist() == [0, 1, 6, 7, 8]


def test_mean_pool_of_an_empty_caption_is_zero_not_nan():
    layout = unpadded.TokenLayout.from_row_splits(tf.constant([0, 2, 2], tf.int64))
    pooled = unpadded.mean_pool(tf.constant([[3.0, 0.0], [1.0, 0.0]]), layout).numpy()
    np.testing.assert_array_equal(pooled, [[1.0, 0.0], [0.0, 0.0]])


def test_flat_layers_give_the_padded_losses_and_gradients(tower, prefix):
    lengths = _text()[wordpiece.WORDPIECE_MASK_XF].sum(axis=1)
    assert lengths.tolist() == [4, 5, 49, 16]  # padded to 49, 62 % of the rows are padding
    flat = _loss_and_gradients(tower, unpadded.FlatPrefix(prefix, FLOAT32).embed)
    padded = _loss_and_gradients(tower, prefix.embed)
    np.testing.assert_allclose(flat[0], padded[0], atol=1e-6)
    assert flat[1] == pytest.approx(padded[1], abs=1e-6)
    assert len(flat[2]) == 2 * 16 + 2  # two layers + projection kernel and bias
    for got, expected, variable in zip(flat[2], padded[2], tower.trainable_variables,
                                       strict=True):
        # float32 rounding of sums in another order: 1e-5 of the largest element (if > 1)
        scale = max(1.0, np.abs(expected).max())
        np.testing.assert_allclose(got, expected, atol=1e-5 * scale, err_msg=variable.name)


def test_bfloat16_matmuls_stay_close_to_float32(tower, prefix):
    """bfloat16 keeps 8 significant bits: each matmul operand is rounded by up to 2^-9 (0.2 %)
    and products accumulate in float32, so the embeddings move by ~1e-3 and each gradient by
    about 1 % of its norm (measured 0.3-1.6 %). The bounds (embeddings 2e-2, loss 1 % of its
    value, gradients 5 % of their norm) leave room for that and fail on a wrong product
    (a missing mask or term moves them by tens of %)."""
    low = _loss_and_gradients(tower, unpadded.FlatPrefix(prefix, BF16).embed)
    high = _loss_and_gradients(tower, unpadded.FlatPrefix(prefix, FLOAT32).embed)
    assert 1e-4 < np.abs(low[0] - high[0]).max() < 2e-2  # bfloat16 did run, and stayed close
    assert low[0].dtype == np.float32 and all(g.dtype == np.float32 for g in low[2])
    assert low[1] == pytest.approx(high[1], rel=1e-2)
    key_bias, others = [], []
    for got, expected, variable in zip(low[2], high[2], tower.trainable_variables, strict=True):
        if "/key/bias" in variable.name:  # zero gradient: softmax ignores a key shift
            key_bias.append(np.linalg.norm(got))
            continue
        others.append(np.linalg.norm(expected))
        error = np.linalg.norm(got - expected) / np.linalg.norm(expected)
        assert error < 5e-2, f"{variable.name}: relative gradient error {error:.3g}"
    # only the rounding of bfloat16 queries: under 1 % of every real gradient's norm
    assert len(key_bias) == 2 and max(key_bias) < 1e-2 * min(others)


def _split() -> data.SplitTables:
    rng = np.random.default_rng(0)
    return data.SplitTables(
        image_features=rng.normal(size=(2, 5)).astype(np.float32),
        image_ids=np.array([b"a.jpg", b"b.jpg"]), text=_text(),
        text_image_index=np.array([0, 0, 1, 1]),
        caption_ids=np.array([f"{i}".encode() for i in range(4)]))


def test_trainer_step_on_the_flat_table_equals_the_padded_step():
    config = TrainerConfig(text_tower="minilm", minilm_trainable_layers=1, embedding_dim=8,
                           batch_size=4, learning_rate=1e-3)
    image_tower, text_tower = towers.build_towers(config, 0, image_dim=5)
    split = _split()
    variables = image_tower.variables + text_tower.variables
    before = [v.numpy() for v in variables]
    after = {}
    for name in ("padded", "flat"):
        for variable, value in zip(variables, before, strict=True):
            variable.assign(value)
        if name == "flat":  # what the Trainer builds
            rows = TrainingRows.for_training(config, image_tower, text_tower, split, FLOAT32)
            assert isinstance(rows.text_prefix, unpadded.FlatPrefix)
        else:  # the same cache's own embedding, padded to the batch's longest caption
            cache = frozen_prefix.FrozenPrefix(text_tower, split.text, config.eval_batch_size)
            rows = TrainingRows(image_tower, text_tower, split, text_prefix=cache)
        trainer = training.PairTrainer(config, rows, 1)
        loss = trainer.train_step(tf.constant([2, 0, 3, 1], tf.int64))["loss"]
        after[name] = (float(loss), [v.numpy() for v in variables])
    assert after["flat"][0] == pytest.approx(after["padded"][0], abs=1e-6)
    moved = 0
    for variable, start, flat, padded in zip(variables, before, after["flat"][1],
                                             after["padded"][1], strict=True):
        np.testing.assert_allclose(flat, padded, atol=1e-6, err_msg=variable.name)
        moved += bool(np.abs(flat - start).max() > 0)
    assert moved == 16 + 2 + 1  # the top layer, the projection and the image kernel stepped


def test_the_trainer_steps_the_cache_in_the_configured_precision_and_says_so(capsys):
    config = TrainerConfig(text_tower="minilm", minilm_trainable_layers=1, embedding_dim=8,
                           batch_size=4, precision="bfloat16")
    image_tower, text_tower = towers.build_towers(config, 0, image_dim=5)
    policy = precision.resolve(config.precision)
    rows = training._training_rows(config, image_tower, text_tower, _split(), policy, verbose=1)
    assert rows.text_prefix.policy.compute == "bfloat16"
    assert rows.text_prefix.prefix.policy.compute == "bfloat16"  # the bottom's one-off pass
    assert capsys.readouterr().out.startswith(
        "MiniLM frozen bottom and fine-tuned layers: trainer.precision=bfloat16 (the CPU has")
    mean = TrainerConfig(text_tower="mean", embedding_dim=8, batch_size=4, precision="bfloat16")
    image_tower, text_tower = towers.build_towers(mean, 10, image_dim=5)
    split = dataclasses.replace(_split(), text={
        features.CAPTION_TOKENS_XF: np.ones([4, 3], np.int64),
        features.CAPTION_LENGTH_XF: np.full([4], 3, np.int64)})
    rows = training._training_rows(mean, image_tower, text_tower, split, policy, 1)
    assert rows.text_prefix is None
    assert capsys.readouterr().out == ""  # nothing runs in bfloat16 without the cache


def test_the_epoch_kept_is_picked_on_float32_eval_embeddings_under_bfloat16(tmp_path,
                                                                            monkeypatch):
    config = TrainerConfig(text_tower="minilm", minilm_trainable_layers=1, embedding_dim=8,
                           batch_size=4, epochs=2, precision="bfloat16")
    image_tower, text_tower = towers.build_towers(config, 0, image_dim=5)
    built, for_tower = [], frozen_prefix.for_tower

    def recording_for_tower(*args, **kwargs):
        built.append(for_tower(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(frozen_prefix, "for_tower", recording_for_tower)
    split = _split()
    result = training.train(config, (image_tower, text_tower), training.Splits(split, split),
                            str(tmp_path), verbose=0)
    train_prefix, eval_prefix = built
    assert (train_prefix.policy.compute, eval_prefix.policy.compute) == ("bfloat16", "float32")
    # the eval captions embed as the exported float32 tower embeds them (bfloat16: ~1e-2 off)
    np.testing.assert_allclose(eval_prefix.embed_all(), text_tower(split.text).numpy(),
                               atol=1e-5)
    whole_tower = evaluation.evaluate(image_tower, text_tower, split)
    assert result.best_metrics == pytest.approx(whole_tower)
