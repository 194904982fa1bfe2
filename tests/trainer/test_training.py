"""The training loop on the tiny transformed fixture: selection, bank refresh, schedule, seeds."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import features, preprocessing
from trainer.config import TrainerConfig
from trainer.inputs import data
from trainer.inputs.training_rows import TrainingRows
from trainer.model import towers
from trainer.negatives import global_mining
from trainer.train import evaluation as trainer_evaluation
from trainer.train import training

TEXT_KEYS = (features.CAPTION_TOKENS_XF, features.CAPTION_LENGTH_XF)


def _setup(transformed, **overrides):  # noqa: F811
    cfg = TrainerConfig(**{"text_tower": "mean", "embedding_dim": 16, "word_dim": 8,
                           "batch_size": 8, "epochs": 2, "learning_rate": 1e-2, **overrides})
    output = transformed.tf_transform_output()
    train = data.load_split(transformed.train_pattern, output, TEXT_KEYS)
    evaluation = data.load_split(transformed.eval_pattern, output, TEXT_KEYS)
    training.set_seeds(cfg.seed)
    tower_pair = towers.build_towers(cfg, preprocessing.token_vocab_size(output), 8)
    return cfg, tower_pair, train, evaluation


def _trainer(cfg, image_tower, text_tower, train) -> training.PairTrainer:
    rows = TrainingRows.for_training(cfg, image_tower, text_tower, train)
    return training.PairTrainer(cfg, rows, steps_per_epoch=6)


def test_tables_dedupe_images(transformed):  # noqa: F811
    _, _, train, evaluation = _setup(transformed)
    assert train.image_features.shape == (16, 8) and train.num_captions == 48
    assert train.image_ids[train.text_image_index[5]] == b"train1.jpg"  # caption 5 = image 1 #2
    assert evaluation.image_ids.tolist() == [f"eval{i}.jpg".encode() for i in range(8)]


def test_tables_do_not_depend_on_the_order_of_the_records(transformed, tmp_path):  # noqa: F811
    output = transformed.tf_transform_output()
    records = list(tf.data.TFRecordDataset(data.matching_files(transformed.train_pattern),
                                           compression_type="GZIP").as_numpy_iterator())
    shuffled = [records[i] for i in np.random.default_rng(3).permutation(len(records))]
    for name, part in (("b", shuffled[:20]), ("a", shuffled[20:])):
        with tf.io.TFRecordWriter(str(tmp_path / name), "GZIP") as writer:
            for record in part:
                writer.write(record)
    in_files = data.load_split(transformed.train_pattern, output, TEXT_KEYS)
    reordered = data.load_split(str(tmp_path / "*"), output, TEXT_KEYS)
    assert sorted(in_files.caption_ids.tolist()) == in_files.caption_ids.tolist()
    for field in ("image_features", "image_ids", "text_image_index", "caption_ids"):
        np.testing.assert_array_equal(getattr(reordered, field), getattr(in_files, field))
    for key in TEXT_KEYS:
        np.testing.assert_array_equal(reordered.text[key], in_files.text[key])


@pytest.mark.parametrize("loss,mining,refresh_steps",
                         [("fhn", "in_batch", 1), ("hn", "global", 1), ("fhn", "global", 4)])
def test_train_learns_and_keeps_the_best_epoch(transformed, tmp_path, loss, mining,  # noqa: F811
                                               refresh_steps):
    cfg, (image_tower, text_tower), train, evaluation = _setup(
        transformed, loss=loss, mining=mining, refresh_steps=refresh_steps, epochs=3)
    result = training.train(cfg, (image_tower, text_tower),
                            training.Splits(train, evaluation), str(tmp_path), verbose=0)
    rsums = [epoch["rsum"] for epoch in result.history]
    assert len(rsums) == 3 and result.best_metrics["rsum"] == max(rsums)
    assert result.best_epoch == 1 + int(np.argmax(rsums))
    # the towers left in place are the best epoch's
    again = trainer_evaluation.evaluate(image_tower, text_tower, evaluation)
    assert again["rsum"] == pytest.approx(result.best_metrics["rsum"])
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    # class-level retrieval is learnable: t2i R@5 over 8 images beats chance (62.5%) clearly
    assert result.best_metrics["t2i_r5"] > 80
    assert tf.io.gfile.glob(str(tmp_path / "logs" / "events.out.tfevents.*"))


def test_bank_refresh_equals_full_encoding_and_schedule(transformed):  # noqa: F811
    cfg, (image_tower, text_tower), train, _ = _setup(
        transformed, mining="global", refresh_steps=3, eval_batch_size=5, epochs=4)
    trainer = _trainer(cfg, image_tower, text_tower, train)
    trainer.strategy.refresh()
    np.testing.assert_allclose(trainer.strategy.bank.image.numpy(),
                               image_tower(train.image_features).numpy(), atol=1e-6)
    np.testing.assert_allclose(trainer.strategy.bank.text.numpy(),
                               text_tower(train.text).numpy(), atol=1e-6)
    schedule = trainer.schedule
    # paper schedule: 1e-2 for the first half (epochs 0-1 = 12 steps), then x0.1
    assert float(schedule(12)) == pytest.approx(1e-2)
    assert float(schedule(13)) == pytest.approx(1e-3)


def test_same_seed_same_run(transformed, tmp_path):  # noqa: F811
    histories = []
    for run in range(2):
        cfg, (image_tower, text_tower), train, evaluation = _setup(transformed, epochs=1)
        result = training.train(cfg, (image_tower, text_tower),
                                training.Splits(train, evaluation), str(tmp_path / str(run)),
                                verbose=0)
        histories.append(result.history)
    assert histories[0] == histories[1]


def test_one_line_per_epoch_carries_its_mean_loss_and_eval(transformed, tmp_path, capsys):  # noqa: F811
    cfg, (image_tower, text_tower), train, evaluation = _setup(transformed, epochs=2)
    result = training.train(cfg, (image_tower, text_tower), training.Splits(train, evaluation),
                            str(tmp_path), verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines  # no second, Keras line per epoch
    for epoch, (line, history) in enumerate(zip(lines, result.history, strict=True), 1):
        assert line.startswith(f"epoch {epoch} (") and line.endswith(f"rsum={history['rsum']:.1f}")
        assert f" s/step) loss {history['loss']:.4f} eval: i2t_r1=" in line


def _brute_force_rows(queries, query_ids, bank, bank_ids):
    scores = queries @ bank.T
    scores[query_ids[:, None] == bank_ids[None, :]] = -np.inf
    return scores.argmax(axis=1)


@pytest.mark.parametrize("image_tower,text_tower", [("linear", "mean"), ("mlp", "mean")])
def test_exact_global_negatives_are_those_of_the_current_towers(
        transformed, image_tower, text_tower):  # noqa: F811
    cfg, (images, texts), train, _ = _setup(transformed, mining="global", eval_batch_size=5,
                                            image_tower=image_tower, text_tower=text_tower)
    miner = _trainer(cfg, images, texts, train).strategy.miner
    caption_index = tf.constant([0, 7, 13, 30, 47], tf.int64)
    image_index = tf.gather(train.text_image_index, caption_index)
    image, text = images(tf.gather(train.image_features, image_index)), texts(
        {key: tf.gather(value, caption_index) for key, value in train.text.items()})
    neg_image, neg_text = miner.negative_index(image, text, image_index, caption_index)
    all_images, all_text = images(train.image_features).numpy(), texts(train.text).numpy()
    np.testing.assert_array_equal(neg_image.numpy(), _brute_force_rows(
        text.numpy(), image_index.numpy(), all_images, np.arange(len(all_images))))
    np.testing.assert_array_equal(neg_text.numpy(), _brute_force_rows(
        image.numpy(), image_index.numpy(), all_text, train.text_image_index))


def test_rows_by_group_lists_each_groups_rows_padded():
    table = global_mining.rows_by_group(np.array([2, 0, 2, 1, 0, 2]), num_groups=4)
    assert table.tolist() == [[1, 4, -1], [3, -1, -1], [0, 2, 5], [-1, -1, -1]]


def test_epoch_batches_cover_each_caption_once_with_autotune_off():
    dataset = training.epoch_batches(10, 3, seed=1)
    rows = np.concatenate([batch.numpy() for batch in dataset])
    assert len(rows) == 9 and len(set(rows.tolist())) == 9 and rows.max() < 10
    assert dataset.options().autotune.enabled is False  # its iterator teardown stalled ~35 s


@pytest.mark.parametrize("overrides,has_products,reused", [
    ({"embedding_dim": 8}, True, True),  # d = the 8 image features: products = outputs
    ({"embedding_dim": 8, "dropout": 0.2}, True, False),  # training outputs differ from x @ W
    ({"embedding_dim": 16}, False, False),  # images scored in their 8-wide input space instead
])
def test_image_products_are_reused_only_as_the_dropout_free_training_outputs(
        transformed, overrides, has_products, reused):  # noqa: F811
    cfg, (images, texts), train, _ = _setup(transformed, mining="global", **overrides)
    trainer = _trainer(cfg, images, texts, train)
    assert (trainer.strategy.reused_head is not None) == reused
    assert (trainer.strategy.miner.image_products() is not None) == has_products
    assert np.isfinite(float(trainer.train_step(tf.range(8, dtype=tf.int64))["loss"]))


@pytest.mark.parametrize("overrides,tail_width", [
    ({}, 4),  # 8-wide image head < d = 16: its last 4 input columns are kept for the norms
    ({"embedding_dim": 8}, None),  # d-wide head: scored through its products instead
])
def test_exact_mode_keeps_the_narrow_heads_input_tail(
        transformed, overrides, tail_width):  # noqa: F811
    cfg, (images, texts), train, _ = _setup(transformed, mining="global", **overrides)
    miner = _trainer(cfg, images, texts, train).strategy.miner
    tail = miner.images.head_tail
    assert (None if tail is None else tail.shape[1]) == tail_width
    if tail is not None:
        np.testing.assert_array_equal(tail.numpy(), train.image_features[:, 4:])
    assert miner.captions.head_tail is None  # the mean text tower has no linear head
