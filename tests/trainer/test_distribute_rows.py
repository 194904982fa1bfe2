"""What several workers must agree on: row keys, each worker's batch, its shard's order.

Fast companions of ``test_distribute.py``'s cluster tests: they check, in one process, the pieces
that make N workers train as one process (and ``train`` under a strategy's distributed variables).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trainer.config import TrainerConfig


def _batch_rows(image_ids: list[bytes], caption_ids: list[bytes]):
    import tensorflow as tf

    from trainer import features
    from trainer.inputs import stream_input

    size = len(image_ids)
    return stream_input.BatchRows(None, None, {
        features.IMAGE_ID_KEY: tf.constant(image_ids),
        features.CAPTION_ID_KEY: tf.constant(caption_ids),
        features.IMAGE_FEATURES_XF: tf.zeros([size, 2]),
        features.CAPTION_FEATURES_XF: tf.zeros([size, 3])})


def test_streamed_batches_key_their_images_and_captions_alike_on_every_worker():
    first = _batch_rows([b"a", b"b", b"a"], [b"a#0", b"b#0", b"a#1"])
    second = _batch_rows([b"b", b"a"], [b"b#1", b"a#0"])
    # image rows: a=0, b=1 in the first batch, b=0, a=1 in the second; keys follow the ids
    np.testing.assert_array_equal(first.image_keys([0, 1]), second.image_keys([1, 0]))
    assert first.image_keys([0])[0] != first.image_keys([1])[0]
    np.testing.assert_array_equal(first.caption_keys([0]), second.caption_keys([1]))
    assert len(set(first.caption_keys([0, 1, 2]).numpy())) == 3
    assert first.image_keys([0]).dtype.name == "int64"


def test_in_memory_rows_are_their_own_keys():
    from trainer.inputs.training_rows import TrainingRows

    index = np.array([4, 0, 4])
    np.testing.assert_array_equal(TrainingRows.image_keys(None, index), index)
    np.testing.assert_array_equal(TrainingRows.caption_keys(None, index), index)


def test_step_sizes_give_each_stream_worker_its_share_of_the_global_batch():
    from trainer.inputs import data, stream_input
    from trainer.train import training

    config = TrainerConfig(batch_size=16)
    stream = stream_input.StreamSplit(("f",), {}, 70, 1, num_workers=2, worker_index=1)
    assert training.step_sizes(config, stream, 2) == (8, 4)  # 35 examples a worker, 8 a step
    with pytest.raises(ValueError, match=r"2 replica\(s\) on 1 worker"):
        training.step_sizes(config, stream_input.StreamSplit(("f",), {}, 70, 1), 2)
    with pytest.raises(ValueError, match=r"1 replica\(s\) on 2 worker"):
        training.step_sizes(config, stream, 1)
    memory = data.SplitTables(np.zeros((3, 1)), np.array([b"i"] * 3), {},
                              np.zeros(70, np.int64), np.array([b"c"] * 70))
    assert training.step_sizes(config, memory, 2) == (16, 4)  # the global batch's rows
    with pytest.raises(ValueError, match="batch_size=16: the global batch must divide"):
        training.step_sizes(config, memory, 3)


def test_train_inside_a_strategy_gives_the_history_of_train_without_one(tmp_path):
    """A one-device ``MirroredStrategy`` holds distributed variables, as every worker does."""
    import tensorflow as tf

    from tests.trainer import distribute_steps as steps
    from trainer.model import towers
    from trainer.train import training

    config = dataclasses.replace(steps.config_of("fhn", "in_batch"), log_every_steps=1)
    split, histories = steps.generated_split(), []
    for strategy in (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["/cpu:0"])):
        with strategy.scope():
            training.set_seeds(config.seed)
            image_tower, text_tower = towers.build_towers(config, 0, steps.IMAGE_DIM,
                                                          steps.CAPTION_DIM)
            result = training.train(config, (image_tower, text_tower),
                                    training.Splits(split, split),
                                    str(tmp_path / str(len(histories))), verbose=0)
        histories.append(result.history)
    assert len(histories[0]) == 1 and histories[0][0]["loss"] > 0
    for name, value in histories[0][0].items():
        np.testing.assert_allclose(histories[1][0][name], value, rtol=1e-6, err_msg=name)


def test_stream_workers_shuffle_their_shards_each_in_its_own_order(tmp_path):
    import tensorflow as tf

    from trainer import features
    from trainer.inputs import stream_input

    path = str(tmp_path / "part-0.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for n in range(40):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                features.CAPTION_ID_KEY: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[str(n).encode()]))})).SerializeToString())
    spec = {features.CAPTION_ID_KEY: tf.io.FixedLenFeature([], tf.string)}
    orders = [[int(c) for b in stream_input.StreamSplit((path,), spec, 40, 64, 2, worker)
               .batches(20, seed=3).as_numpy_iterator() for c in b[features.CAPTION_ID_KEY]]
              for worker in (0, 1)]
    assert sorted(orders[0] + orders[1]) == list(range(40))  # a partition of the records
    assert sorted(orders[0]) == list(range(0, 40, 2))
    # one seed would pair record 2m on the first worker with record 2m + 1 on the second
    assert [n - 1 for n in orders[1]] != orders[0]


def test_the_stream_gives_each_image_a_caption_on_both_workers_under_other_rows():
    from tests.trainer import distribute_steps

    records = distribute_steps.stream_records()
    assert sorted(records) == [(i, c) for i in range(32) for c in (0, 1)]
    batch = records[:16]  # the first global batch; record shards alternate between workers
    first, second = [image for image, _ in batch[0::2]], [image for image, _ in batch[1::2]]
    assert first == list(range(8))
    assert second == [1, 2, 3, 4, 5, 6, 7, 0]
