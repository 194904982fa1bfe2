"""Reads Transform's output (GZIP TFRecords of transformed tf.Examples) into in-memory tables.

A split becomes one row per caption (the text tower's inputs, the caption's image index) plus a
deduplicated image table, so that every image is encoded once per bank refresh or evaluation and
global mining can index images and captions directly. Rows are ordered by caption id, not by
file order: ExampleGen's Beam writers need not write a split's records in the same order twice,
and the seeded shuffle permutes row numbers, so only a fixed order makes a seeded run repeat
itself. Memory: ``4 * D * N_images`` bytes of image features plus the text inputs
(``8 * L * N_captions`` for tokens); Flickr30K-sized splits fit comfortably.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import features

READ_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class SplitTables:
    """One split in memory.

    Attributes:
        image_features: [N_i, D] float32 transformed image features, one row per image.
        image_ids: [N_i] bytes image ids, in order of their first caption.
        text: text-tower inputs, key -> [N_c, ...] array, one row per caption.
        text_image_index: [N_c] int64 row of each caption's image in ``image_features``.
        caption_ids: [N_c] bytes caption ids, ascending.

    """

    image_features: np.ndarray
    image_ids: np.ndarray
    text: dict[str, np.ndarray]
    text_image_index: np.ndarray
    caption_ids: np.ndarray

    @property
    def num_captions(self) -> int:
        """N_c."""
        return int(self.text_image_index.shape[0])


def matching_files(file_patterns: Sequence[str] | str) -> list[str]:
    """The files that glob pattern(s) ``file_patterns`` match, sorted.

    Raises:
        ValueError: no file matches.

    """
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(name for pattern in patterns for name in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no transformed TFRecord files match {patterns}")
    return files


def read_transformed(file_patterns: Sequence[str] | str, tf_transform_output: tft.TFTransformOutput,
                     keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Parses the transformed examples of ``file_patterns`` into arrays.

    Args:
        file_patterns: glob pattern(s) of GZIP TFRecord files (``fn_args.train_files``).
        tf_transform_output: the Transform output (its transformed feature spec is used).
        keys: transformed feature keys to read.

    Returns:
        key -> numpy array with one row per example.

    Raises:
        ValueError: no file matches, a key is not a Transform output, or no example is found.

    """
    spec = tf_transform_output.transformed_feature_spec()
    missing = sorted(set(keys) - set(spec))
    if missing:
        raise ValueError(f"transformed data has no features {missing}; it has {sorted(spec)}")
    spec = {key: spec[key] for key in keys}
    files = matching_files(file_patterns)
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(READ_BATCH)
    dataset = dataset.map(lambda records: tf.io.parse_example(records, spec))
    batches = list(dataset.as_numpy_iterator())
    if not batches:
        raise ValueError(f"no examples in transformed files {files}")
    return {key: np.concatenate([batch[key] for batch in batches]) for key in keys}


def _dedupe_images(image_ids: np.ndarray, image_features: np.ndarray):
    """Unique images in order of first appearance, checking that duplicates agree."""
    unique, first, inverse = np.unique(image_ids, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    table = image_features[first[order]]
    mismatch = np.flatnonzero(np.any(table[rank[inverse]] != image_features, axis=1))
    if mismatch.size:
        row = int(mismatch[0])
        raise ValueError(f"example {row}: image_id {image_ids[row]!r} has image features that "
                         f"differ from the first example of that image ({mismatch.size} such)")
    return table, unique[order], rank[inverse].astype(np.int64)


def load_split(file_patterns: Sequence[str] | str, tf_transform_output: tft.TFTransformOutput,
               text_keys: Sequence[str]) -> SplitTables:
    """Reads a transformed split into ``SplitTables``.

    Args:
        file_patterns: glob pattern(s) of the split's transformed GZIP TFRecords.
        tf_transform_output: the Transform output.
        text_keys: transformed features that the text tower reads.

    Returns:
        The split's tables, one row per caption in ascending caption id.

    """
    keys = [features.IMAGE_ID_KEY, features.CAPTION_ID_KEY, features.IMAGE_FEATURES_XF,
            *text_keys]
    arrays = read_transformed(file_patterns, tf_transform_output, keys)
    order = np.argsort(arrays[features.CAPTION_ID_KEY].reshape(-1), kind="stable")
    arrays = {key: value[order] for key, value in arrays.items()}
    image_ids = arrays[features.IMAGE_ID_KEY].reshape(-1)
    table, unique_ids, index = _dedupe_images(
        image_ids, arrays[features.IMAGE_FEATURES_XF].astype(np.float32))
    return SplitTables(
        image_features=table,
        image_ids=unique_ids,
        text={key: arrays[key] for key in text_keys},
        text_image_index=index,
        caption_ids=arrays[features.CAPTION_ID_KEY].reshape(-1),
    )
