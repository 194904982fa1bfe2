"""A tiny transformed dataset, made by running the real preprocessing_fn with tft_beam.

Images belong to one of ``NUM_CLASSES`` classes: the image features are the class one-hot plus
noise and every caption names its class colour, so retrieval is learnable at the class level.
The ``transformed`` fixture (``tests/trainer/conftest.py``) builds it once per test session.
"""

import dataclasses
import os
import pathlib
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from trainer import features, preprocessing

NUM_CLASSES = 4
IMAGE_DIM = 8
CAPTION_DIM = 6
COLOURS = ("red", "green", "blue", "yellow")
FILLERS = ("a dog runs", "two people sit", "a child plays on grass", "the man looks")


@dataclasses.dataclass(frozen=True)
class TransformedData:
    """Paths of the tiny Transform output and its GZIP TFRecord splits."""

    transform_output: str
    train_pattern: str
    eval_pattern: str
    raw_eval: list  # raw feature dicts of the eval split

    def tf_transform_output(self) -> tft.TFTransformOutput:
        return tft.TFTransformOutput(self.transform_output)


def raw_rows(num_images: int, captions_per_image: int, seed: int, prefix: str) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for image in range(num_images):
        label = image % NUM_CLASSES
        image_features = np.eye(IMAGE_DIM, dtype=np.float32)[label] * 3
        image_features = image_features + rng.normal(0, 0.3, IMAGE_DIM).astype(np.float32)
        for n in range(captions_per_image):
            caption = f"{FILLERS[(image + n) % len(FILLERS)]} {COLOURS[label]}"
            rows.append({
                features.IMAGE_ID_KEY: f"{prefix}{image}.jpg".encode(),
                features.CAPTION_ID_KEY: f"{prefix}{image}.jpg#{n}".encode(),
                features.CAPTION_KEY: caption.encode(),
                features.IMAGE_FEATURES_KEY: image_features.tolist(),
                features.CAPTION_FEATURES_KEY: rng.normal(size=CAPTION_DIM).tolist(),
            })
    return rows


RAW_SPEC = {
    features.IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    features.CAPTION_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    features.CAPTION_KEY: tf.io.FixedLenFeature([], tf.string),
    features.IMAGE_FEATURES_KEY: tf.io.FixedLenFeature([IMAGE_DIM], tf.float32),
    features.CAPTION_FEATURES_KEY: tf.io.FixedLenFeature([CAPTION_DIM], tf.float32),
}


def _write(rows: list[dict], schema, path: pathlib.Path) -> None:
    coder = tft.coders.ExampleProtoCoder(schema)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            writer.write(coder.encode(row))


def build_transformed(out_dir: pathlib.Path, train_rows: list[dict],
                      eval_rows: list[dict], transform_config: dict | None = None):
    """Runs preprocessing_fn over train (analyze + transform) and eval (transform)."""
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(RAW_SPEC)
    fn = lambda inputs: preprocessing.preprocessing_fn(inputs, transform_config)  # noqa: E731
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=out_dir), force_tf_compat_v1=False):
        (train_xf, train_meta), transform_fn = (
            (train_rows, metadata) | tft_beam.AnalyzeAndTransformDataset(fn))
        eval_xf, _ = ((eval_rows, metadata), transform_fn) | tft_beam.TransformDataset()
        _ = transform_fn | tft_beam.WriteTransformFn(str(out_dir / "transform"))
    # TFX's Transform also writes the raw schema (the serving signature parses with it).
    metadata_io.write_metadata(metadata, str(out_dir / "transform" / "metadata"))
    for split, rows in (("train", train_xf), ("eval", eval_xf)):
        os.makedirs(out_dir / split, exist_ok=True)
        _write(rows, train_meta.schema, out_dir / split / "part-0.gz")
    return TransformedData(str(out_dir / "transform"), str(out_dir / "train" / "*"),
                           str(out_dir / "eval" / "*"), eval_rows)
