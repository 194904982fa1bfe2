"""The caption vocabulary on Flickr8k train and the out-of-vocabulary rate on eval.

Runs the real ``trainer.preprocessing.preprocessing_fn`` in-process with
``tensorflow_transform.beam`` (no TFX): analyzes the train captions (with their MobileNetV2
image features, read as tf.Examples through TFXIO), transforms the dev (eval) captions with the
resulting transform, and prints side by side, in one run:

- the vocabulary size, the eval OOV rate over all tokens (vocabulary file) and over the tokens
  kept after truncation (the transformed ids, OOV = ids after the vocabulary), eval captions
  with at least one OOV token, caption lengths and the share truncated by ``max_tokens``;
- the same vocabulary size and OOV rate counted in pure Python (``trainer.tokens.text.tokenize_py``)
  for several frequency thresholds, and whether it equals the Transform's vocabulary;
- tokenization throughput of the TF graph vs its Python twin.

``python -m benchmarks.report_vocabulary [--quick] [--config '{"max_tokens": 24}']``
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import argparse  # noqa: E402
import collections  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
from tensorflow_transform.coders import example_proto_coder  # noqa: E402
from tfx_bsl.tfxio import tf_example_record  # noqa: E402

from benchmarks import harness  # noqa: E402
from trainer import features, preprocessing
from trainer.tokens import text

THRESHOLDS = (1, 2, 3, 5)
QUICK_CAPTIONS = (2000, 500)  # train, eval captions with --quick


def _lines(path: pathlib.Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_split_rows(folder: pathlib.Path, images_file: str, limit: int | None) -> list[dict]:
    """Raw instances (schema layout: strings [1], image_features [1280]) of one split."""
    image_names = set(_lines(folder / images_file))
    matrix = np.load(folder / "features" / "mobilenet_v2.npy")
    row_of = {
        name: row for row, name in enumerate(_lines(folder / "features/mobilenet_v2.names.txt"))
    }
    rows = []
    for line_number, line in enumerate(_lines(folder / "Flickr8k.token.txt"), start=1):
        caption_id, caption = line.split("\t", 1)
        image_id = caption_id.rsplit("#", 1)[0]
        if image_id not in image_names:
            continue
        if image_id not in row_of:
            raise ValueError(f"Flickr8k.token.txt:{line_number}: no image features for {image_id}")
        rows.append(
            {
                features.IMAGE_ID_KEY: [image_id.encode()],
                features.CAPTION_ID_KEY: [caption_id.encode()],
                features.CAPTION_KEY: [caption.encode()],
                features.IMAGE_FEATURES_KEY: matrix[row_of[image_id]].astype(np.float32),
            }
        )
    return rows[:limit]


def _metadata(dim: int) -> tft.DatasetMetadata:
    spec = {key: tf.io.FixedLenFeature([1], tf.string) for key in features.ID_KEYS}
    spec[features.CAPTION_KEY] = tf.io.FixedLenFeature([1], tf.string)
    spec[features.IMAGE_FEATURES_KEY] = tf.io.FixedLenFeature([dim], tf.float32)
    return tft.DatasetMetadata.from_feature_spec(spec)


def write_examples(rows: list[dict], schema, path: str) -> str:
    """Writes rows as a TFRecord file of tf.Examples (the layout ExampleGen writes)."""
    coder = example_proto_coder.ExampleProtoCoder(schema)
    with tf.io.TFRecordWriter(path) as writer:
        for row in rows:
            writer.write(coder.encode(row))
    return path


def run_transform(train: list[dict], evaluation: list[dict], config: dict, temp_dir: str):
    """Analyzes train with Transform's Beam pipeline; transforms eval with its output.

    Train is read from a TFRecord file through TFXIO, as the TFX Transform component reads
    ExampleGen's output (in-memory rows would be pickled into the Beam pipeline, far slower).
    Eval goes through ``TFTransformOutput.transform_raw_features``, the graph the Trainer and
    serving apply.

    Returns:
        (eval outputs {name: array}, vocabulary, seconds of the analysis).

    """
    schema = _metadata(len(train[0][features.IMAGE_FEATURES_KEY])).schema
    source = tf_example_record.TFExampleRecord(
        write_examples(train, schema, os.path.join(temp_dir, "train.tfrecord")), schema=schema,
        telemetry_descriptors=["report_vocabulary"])
    fn = functools.partial(preprocessing.preprocessing_fn, custom_config=config)
    out_dir = os.path.join(temp_dir, "out")
    start = time.perf_counter()
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=temp_dir):
        raw = pipeline | "ReadTrain" >> source.BeamSource()
        transform_fn = (raw, source.TensorAdapterConfig()) | tft_beam.AnalyzeDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    seconds = time.perf_counter() - start
    output = tft.TFTransformOutput(out_dir)
    raw_eval = {key: tf.constant(np.stack([row[key] for row in evaluation]))
                for key in evaluation[0]}
    eval_out = {key: value.numpy() for key, value in
                output.transform_raw_features(raw_eval, drop_unused_features=True).items()}
    vocab_path = output.vocabulary_file_by_name(preprocessing.VOCAB_NAME)
    vocabulary = pathlib.Path(vocab_path).read_text(encoding="utf-8").splitlines()
    return eval_out, vocabulary, seconds


def python_vocabulary(tokens: list[list[str]], threshold: int, top_k: int | None) -> set[str]:
    """The vocabulary that TFT builds, counted in Python: frequent tokens, most frequent first."""
    counts = collections.Counter(token for row in tokens for token in row)
    ranked = sorted(((n, t) for t, n in counts.items() if n >= threshold), reverse=True)
    return {token for _, token in ranked[:top_k]}


def oov_rate(tokens: list[list[str]], vocabulary: set[str]) -> float:
    """Share of all tokens outside ``vocabulary``."""
    total = sum(len(row) for row in tokens)
    return sum(token not in vocabulary for row in tokens for token in row) / max(total, 1)


def kept_token_figures(eval_out: dict[str, np.ndarray], vocab_size: int) -> dict[str, float]:
    """OOV share among kept tokens (ids > V) and eval captions with an OOV (transformed ids)."""
    ids = eval_out[features.CAPTION_TOKENS_XF]
    real = ids != preprocessing.PADDING_ID
    oov = real & (ids > vocab_size)
    return {
        "oov_kept": oov.sum() / max(real.sum(), 1),
        "captions_with_oov": oov.any(axis=1).mean(),
    }


def tokenize_throughput(captions: list[str]) -> tuple[float, float]:
    """Captions per second: the TF graph (one batch) and the Python twin."""
    batch = tf.constant(captions)
    text.tokenize(batch[:10])  # warm-up
    start = time.perf_counter()
    text.tokenize(batch).flat_values.numpy()
    tf_rate = len(captions) / (time.perf_counter() - start)
    start = time.perf_counter()
    for caption in captions:
        text.tokenize_py(caption)
    return tf_rate, len(captions) / (time.perf_counter() - start)


def _captions(rows: list[dict]) -> list[str]:
    return [row[features.CAPTION_KEY][0].decode("utf-8") for row in rows]


def report(train_rows, eval_rows, config: preprocessing.TransformConfig, eval_out, vocab, secs):
    """Prints every figure (see the module docstring)."""
    train_tokens = [text.tokenize_py(c) for c in _captions(train_rows)]
    eval_tokens = [text.tokenize_py(c) for c in _captions(eval_rows)]
    lengths = np.array([len(row) for row in eval_tokens])
    kept = kept_token_figures(eval_out, len(vocab))
    print(
        f"train captions {len(train_rows)}, eval captions {len(eval_rows)}, "
        f"TransformConfig {config}"
    )
    print(f"Transform analysis of train (tft_beam, TFRecord input, DirectRunner): {secs:.1f} s")
    print(f"vocabulary size {len(vocab)} (+{config.num_oov_buckets} OOV bucket(s), +1 padding)")
    print(
        f"eval OOV rate: all tokens {oov_rate(eval_tokens, set(vocab)):.4%}, kept tokens "
        f"{kept['oov_kept']:.4%}; eval captions with >=1 OOV {kept['captions_with_oov']:.2%}"
    )
    print(
        f"eval caption length: mean {lengths.mean():.2f}, median {np.median(lengths):.0f}, "
        f"p95 {np.percentile(lengths, 95):.0f}, max {lengths.max()}; truncated by max_tokens "
        f"{config.max_tokens}: {(lengths > config.max_tokens).mean():.2%}"
    )
    print("threshold | vocabulary (Python) | eval OOV rate (Python)")
    for threshold in THRESHOLDS:
        python_vocab = python_vocabulary(train_tokens, threshold, config.vocab_top_k)
        mark = "  <- configured" if threshold == config.vocab_frequency_threshold else ""
        rate = oov_rate(eval_tokens, python_vocab)
        print(f"{threshold:9d} | {len(python_vocab):19d} | {rate:.4%}{mark}")
    same = python_vocabulary(
        train_tokens, config.vocab_frequency_threshold, config.vocab_top_k
    ) == set(vocab)
    print(f"Python vocabulary == Transform vocabulary file: {same}")
    tf_rate, py_rate = tokenize_throughput(_captions(train_rows))
    print(
        f"tokenization: TF {tf_rate:,.0f} captions/s, Python twin {py_rate:,.0f} captions/s, "
        f"TF/Python {tf_rate / py_rate:.2f}x"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2000 train / 500 eval captions")
    parser.add_argument("--data", default=None, help="Flickr8k folder (default ../shared)")
    parser.add_argument("--config", default="{}", help="TransformConfig fields as JSON")
    args = parser.parse_args(argv)
    folder = harness.flickr8k_dir(args.data)
    config_values = json.loads(args.config)
    config = preprocessing.TransformConfig.from_dict(config_values)
    train_limit, eval_limit = QUICK_CAPTIONS if args.quick else (None, None)
    train_rows = load_split_rows(folder, "Flickr_8k.trainImages.txt", train_limit)
    eval_rows = load_split_rows(folder, "Flickr_8k.devImages.txt", eval_limit)
    with tempfile.TemporaryDirectory() as temp_dir:
        eval_out, vocab, seconds = run_transform(train_rows, eval_rows, config_values, temp_dir)
    report(train_rows, eval_rows, config, eval_out, vocab, seconds)


if __name__ == "__main__":
    main()
