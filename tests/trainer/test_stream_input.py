"""The ``stream`` training input: coverage, seeded order, batches, shards, mode choice, errors."""

import collections
import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from trainer import features, preprocessing
from trainer.config import TrainerConfig
from trainer.inputs import data, stream_input
from trainer.inputs.training_rows import TrainingRows
from trainer.model import towers
from trainer.train import training

TEXT_KEYS = (features.CAPTION_TOKENS_XF, features.CAPTION_LENGTH_XF)
SPEC = {
    features.IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    features.CAPTION_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    features.IMAGE_FEATURES_XF: tf.io.FixedLenFeature([2], tf.float32),
    features.CAPTION_FEATURES_XF: tf.io.FixedLenFeature([3], tf.float32),
}


def _example(n: int) -> bytes:
    """Caption ``c<n>`` of image ``i<n // 2>`` (two captions per image)."""
    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    def text(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    return tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_ID_KEY: text(f"i{n // 2}"), features.CAPTION_ID_KEY: text(f"c{n}"),
        features.IMAGE_FEATURES_XF: floats([n // 2, 0.5]),
        features.CAPTION_FEATURES_XF: floats([n, n, n])})).SerializeToString()


def _split(tmp_path, num_examples: int, num_files: int = 2, **kwargs) -> stream_input.StreamSplit:
    """``num_examples`` examples dealt round-robin into ``num_files`` GZIP files."""
    files = [str(tmp_path / f"part-{i}.gz") for i in range(num_files)]
    writers = [tf.io.TFRecordWriter(name, options="GZIP") for name in files]
    for n in range(num_examples):
        writers[n % num_files].write(_example(n))
    for writer in writers:
        writer.close()
    return stream_input.StreamSplit(tuple(files), SPEC, num_examples,
                                    kwargs.pop("shuffle_buffer", 64), **kwargs)


def _caption_ids(split: stream_input.StreamSplit, batch: int, seed: int) -> list[list[str]]:
    return [[c.decode() for c in b[features.CAPTION_ID_KEY]]
            for b in split.batches(batch, seed).as_numpy_iterator()]


def test_an_epoch_yields_each_example_once(tmp_path):
    batches = _caption_ids(_split(tmp_path, 12), batch=4, seed=0)
    counts = collections.Counter(c for b in batches for c in b)
    assert counts == {f"c{n}": 1 for n in range(12)}


def test_order_follows_the_seed(tmp_path):
    split = _split(tmp_path, 12)
    order = [c for b in _caption_ids(split, 4, seed=3) for c in b]
    assert order == [c for b in _caption_ids(split, 4, seed=3) for c in b]
    assert order != [c for b in _caption_ids(split, 4, seed=4) for c in b]
    assert order != sorted(order, key=lambda c: int(c[1:]))  # shuffled, not file order


def test_batches_have_the_configured_size_and_the_remainder_is_dropped(tmp_path):
    split = _split(tmp_path, 10)
    parsed = list(split.batches(4, seed=0).as_numpy_iterator())
    assert [b[features.IMAGE_FEATURES_XF].shape for b in parsed] == [(4, 2), (4, 2)]
    assert parsed[0][features.CAPTION_FEATURES_XF].shape == (4, 3)
    # the features are the parsed values: caption cN has features [N, N, N], image N // 2
    for b in parsed:
        n = np.array([int(c[1:]) for c in b[features.CAPTION_ID_KEY]])
        np.testing.assert_array_equal(b[features.CAPTION_FEATURES_XF][:, 0], n)
        np.testing.assert_array_equal(b[features.IMAGE_FEATURES_XF][:, 0], n // 2)


@pytest.mark.parametrize("num_examples,num_files", [(13, 2), (13, 1), (8, 3)])
def test_two_worker_shards_partition_the_split(tmp_path, num_examples, num_files):
    shards = [_split(tmp_path, num_examples, num_files, num_workers=2, worker_index=i)
              for i in range(2)]
    seen = [{c for b in _caption_ids(shard, 1, seed=5) for c in b} for shard in shards]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {f"c{n}" for n in range(num_examples)}
    assert sorted(map(len, seen)) == [num_examples // 2, num_examples - num_examples // 2]
    assert shards[0].num_captions == num_examples // 2  # the steps every worker can run


def test_worker_shard_reads_tf_config():
    assert stream_input.worker_shard({}) == (1, 0)
    cluster = {"chief": ["h:1"], "worker": ["h:2", "h:3"]}
    for task, expected in ((("chief", 0), (3, 0)), (("worker", 1), (3, 2))):
        tf_config = {"cluster": cluster, "task": {"type": task[0], "index": task[1]}}
        assert stream_input.worker_shard({"TF_CONFIG": json.dumps(tf_config)}) == expected


@pytest.mark.parametrize("raw", ["{not json", '{"cluster": {"worker": ["h:1"]}}',
                                 '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", '
                                 '"index": 1}}',
                                 '{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", '
                                 '"index": 0}}'])
def test_malformed_tf_config_is_a_clear_error(raw):
    with pytest.raises(ValueError, match="TF_CONFIG"):
        stream_input.worker_shard({"TF_CONFIG": raw})


@pytest.mark.parametrize("overrides", [{"mining": "global"},
                                       {"mining": "global", "refresh_steps": 5}])
def test_stream_with_a_mining_mode_that_needs_memory_is_a_config_error(overrides):
    with pytest.raises(ValueError, match=r"^TrainerConfig.input='stream': mining mode"):
        TrainerConfig(input="stream", **overrides)
    TrainerConfig(input="memory", **overrides)
    TrainerConfig(input="auto", **overrides)


def test_stream_allows_in_batch_and_no_mining():
    assert TrainerConfig(input="stream").mining_mode == "in_batch"
    assert TrainerConfig(input="stream", loss="sh").mining_mode == "none"
    with pytest.raises(ValueError, match="TrainerConfig.input="):
        TrainerConfig(input="disk")
    with pytest.raises(ValueError, match="TrainerConfig.memory_budget_gb"):
        TrainerConfig(memory_budget_gb=0)


def test_example_bytes_hand_computed():
    # 2 + 3 float32 (20 bytes) and two ids
    assert stream_input.example_bytes(SPEC) == 20 + 2 * stream_input.STRING_BYTES


def test_auto_streams_only_over_the_budget():
    config = TrainerConfig(memory_budget_gb=1.0)
    assert stream_input.choose_input(config, 2**30)[0] == "memory"
    mode, reason = stream_input.choose_input(config, 2**30 + 1)
    assert mode == "stream" and "1.00 GiB" in reason and "memory_budget_gb=1" in reason
    assert stream_input.choose_input(TrainerConfig(input="memory"), None)[0] == "memory"
    assert stream_input.choose_input(TrainerConfig(input="stream"), None)[0] == "stream"


def test_auto_over_budget_with_global_mining_is_an_error():
    config = TrainerConfig(mining="global", memory_budget_gb=1.0)
    assert stream_input.choose_input(config, 2**30)[0] == "memory"
    with pytest.raises(ValueError, match="memory_budget_gb.*mining='in_batch'"):
        stream_input.choose_input(config, 2**30 + 1)


def test_batch_rows_index_the_batch_images_by_id():
    examples = {features.IMAGE_ID_KEY: tf.constant([b"a", b"b", b"a", b"c"]),
                features.CAPTION_ID_KEY: tf.constant([b"a#0", b"b#0", b"a#1", b"c#0"]),
                features.IMAGE_FEATURES_XF: tf.constant([[1.0], [2.0], [1.0], [3.0]]),
                features.CAPTION_FEATURES_XF: tf.constant([[5.0], [6.0], [7.0], [8.0]])}
    rows = stream_input.BatchRows(None, None, examples)
    np.testing.assert_array_equal(rows.text_image_index, [0, 1, 0, 2])
    np.testing.assert_array_equal(rows.image_features, [[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(rows.caption_index, [0, 1, 2, 3])
    assert list(rows.text) == [features.CAPTION_FEATURES_XF]


def _towers(cfg, output):
    training.set_seeds(cfg.seed)
    return towers.build_towers(cfg, preprocessing.token_vocab_size(output), 8)


@pytest.mark.parametrize("loss", ["fhn", "sh"])
def test_a_streamed_batch_trains_as_the_same_memory_rows(transformed, loss):  # noqa: F811
    """Same pairs in the same order: the same losses over two steps (so the same updates).

    The memory table orders rows by caption id, so the memory step takes the rows of the
    streamed batch's caption ids.
    """
    cfg = TrainerConfig(text_tower="mean", embedding_dim=16, word_dim=8, batch_size=8,
                        learning_rate=1e-2, loss=loss)
    output = transformed.tf_transform_output()
    table = data.load_split(transformed.train_pattern, output, TEXT_KEYS)
    memory = training.PairTrainer(cfg, TrainingRows(*_towers(cfg, output), table), 6)
    stream = training.PairTrainer(cfg, stream_input.BatchRows(*_towers(cfg, output)), 6)
    spec = stream_input.stream_spec(output.transformed_feature_spec(), TEXT_KEYS)
    records = tf.data.TFRecordDataset(data.matching_files(transformed.train_pattern), "GZIP")
    parsed = records.batch(8).map(lambda r: tf.io.parse_example(r, spec))
    row_of = {caption_id: row for row, caption_id in enumerate(table.caption_ids.tolist())}
    for _, examples in zip(range(2), parsed, strict=False):
        ids = examples[features.CAPTION_ID_KEY].numpy().reshape(-1).tolist()
        expected = memory.train_step(tf.constant([row_of[i] for i in ids], tf.int64))
        got = stream.train_step(examples)
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-5, err_msg=name)


def test_training_input_picks_and_logs_the_mode(transformed, caplog):  # noqa: F811
    output = transformed.tf_transform_output()
    with caplog.at_level(logging.INFO):
        memory = stream_input.training_input(TrainerConfig(), transformed.train_pattern, output,
                                             TEXT_KEYS, environ={})
        streamed = stream_input.training_input(TrainerConfig(memory_budget_gb=1e-6),
                                               transformed.train_pattern, output, TEXT_KEYS,
                                               environ={})
    assert isinstance(memory, data.SplitTables) and memory.num_captions == 48
    assert isinstance(streamed, stream_input.StreamSplit) and streamed.num_examples == 48
    choices = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training")]
    assert [c.split(" (")[0] for c in choices] == ["training input: memory",
                                                    "training input: stream"]


def test_train_runs_on_a_stream(transformed, tmp_path):  # noqa: F811
    cfg = TrainerConfig(text_tower="mean", embedding_dim=16, word_dim=8, batch_size=8, epochs=2,
                        learning_rate=1e-2, input="stream")
    output = transformed.tf_transform_output()
    split = stream_input.training_input(cfg, transformed.train_pattern, output, TEXT_KEYS, {})
    evaluation = data.load_split(transformed.eval_pattern, output, TEXT_KEYS)
    result = training.train(cfg, _towers(cfg, output), training.Splits(split, evaluation),
                            str(tmp_path), verbose=0)
    assert len(result.history) == 2
    assert result.history[-1]["loss"] < result.history[0]["loss"]
