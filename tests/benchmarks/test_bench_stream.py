"""The benchmark's generated split: Transform's output format, its sizes, reuse of the cache."""

import numpy as np
import tensorflow as tf

from benchmarks import bench_stream
from trainer import features

SPEC = {
    features.IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    features.CAPTION_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    features.IMAGE_FEATURES_XF: tf.io.FixedLenFeature([bench_stream.IMAGE_DIM], tf.float32),
    features.CAPTION_TOKENS_XF: tf.io.FixedLenFeature([bench_stream.MAX_TOKENS], tf.int64),
    features.CAPTION_LENGTH_XF: tf.io.FixedLenFeature([], tf.int64),
}


def test_generated_split_parses_as_transform_output_and_is_reused(tmp_path):
    size = {"captions": 10, "images": 2, "files": 3}
    pattern = bench_stream.generate_split(tmp_path / "split", size, vocab_size=7)
    files = sorted(tf.io.gfile.glob(pattern))
    assert len(files) == 3
    records = tf.data.TFRecordDataset(files, "GZIP").batch(100)
    parsed = next(iter(records.map(lambda r: tf.io.parse_example(r, SPEC))))
    ids = sorted(parsed[features.CAPTION_ID_KEY].numpy().tolist())
    assert ids == sorted(f"gen{i // 5}.jpg#{i % 5}".encode() for i in range(10))
    tokens, lengths = parsed[features.CAPTION_TOKENS_XF].numpy(), parsed[
        features.CAPTION_LENGTH_XF].numpy()
    real = np.arange(bench_stream.MAX_TOKENS)[None, :] < lengths[:, None]
    assert np.all((tokens[real] >= 1) & (tokens[real] < 7)) and np.all(tokens[~real] == 0)
    # the five captions of an image share its features
    image = parsed[features.IMAGE_ID_KEY].numpy()
    first = parsed[features.IMAGE_FEATURES_XF].numpy()[image == b"gen0.jpg"]
    assert len(first) == 5 and np.all(first == first[0])
    stamp = [tf.io.gfile.stat(name).mtime_nsec for name in files]
    assert bench_stream.generate_split(tmp_path / "split", size, vocab_size=7) == pattern
    assert [tf.io.gfile.stat(name).mtime_nsec for name in files] == stamp
