"""The benchmark's generated split (Transform's output format, sizes, cache reuse) and summary."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import bench_stream, results_page
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


def test_summary_lines_become_the_results_page_rows(capsys):
    """``make bench`` records the closing ``label: value`` lines; verdicts follow the limits."""
    size = {"captions": 1_000_000, "images": 200_000, "files": 16}
    rss = {"steps": 400, "estimate_gib": 10.58, "count_seconds": 41.6, "peak_rss_gib": 1.5,
           "s_per_step": 0.0504}
    machine = {"cpu": "Test CPU", "cores": 2, "matmul_gflops": 300.0, "load": 1.5}
    steps = {"memory": 0.020, "stream": 0.0230, "machine": machine}  # 1.15x
    rsums = {"memory": {"rsum": 200.0}, "stream": {"rsum": 197.5}}  # -2.5 points
    bench_stream._summary(size, 2.5, rss, steps, rsums, 3, {"text_tower": "mean"})
    lines = capsys.readouterr().out.splitlines()
    entry = results_page.summary_entry("bench_stream", lines, "cmd", machine, "2026-12-06", "c")
    assert entry["title"] == ("bench_stream (stream vs memory input; mean text tower, batch 128, "
                              "loss fhn; overrides {'text_tower': 'mean'})")
    rows = dict(entry["rows"])
    assert rows["stream peak RSS"] == (
        "1.50 GiB over 400 steps at 0.050 s/step (limit 3 GiB, within limit)")
    assert rows["Flickr8k in-batch step"] == (
        "memory 20.0 ms, stream 23.0 ms = 1.15x (limit 1.2x, within limit)")
    assert rows["Flickr8k eval rsum after 3 epochs"] == (
        "memory 200.00, stream 197.50, stream - memory -2.50 (limit +-2, OVER LIMIT)")
    assert rows["generated split"].startswith("1,000,000 captions / 200,000 images, 16 GZIP")


@pytest.mark.slow(minutes=4)
def test_quick_run_streams_the_generated_split_and_prints_every_figure(flickr8k_dir, tmp_path,
                                                                       capsys):
    """``--quick`` (what ``make bench``'s quick run calls) measures all three, on real data."""
    bench_stream.main(["--quick", "--data", str(flickr8k_dir), "--work-dir",
                       str(tmp_path / "work"), "--cache", str(tmp_path / "cache")])
    lines = capsys.readouterr().out.splitlines()
    summary = lines[next(i for i, line in enumerate(lines) if line.startswith("== summary")):]
    rows = dict(results_page.summary_entry("bench_stream", summary, "", {}, "", "")["rows"])
    assert rows["generated split"].startswith("20,000 captions / 4,000 images, 4 GZIP files")
    assert "auto -> stream" in rows["generated split"]
    assert rows["stream peak RSS"].endswith("(limit 3 GiB, within limit)")
    assert rows["Flickr8k in-batch step"].startswith("memory ")
    assert rows["Flickr8k eval rsum after 1 epochs"].startswith("memory ")
