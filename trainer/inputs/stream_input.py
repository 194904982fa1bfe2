"""The ``stream`` training input: tf.data straight from Transform's output TFRecords.

``TrainerConfig.input`` picks how the training split is read (docs/input.md): ``memory`` loads it
into ``trainer.inputs.data.SplitTables`` (device-resident in ``TrainingRows``); ``stream`` reads it
per
epoch as interleaved GZIP files -> this worker's shard -> shuffle buffer -> batches -> parse ->
prefetch, so that memory holds the shuffle buffer and a few batches, not the split; ``auto``
streams when the split's estimated in-memory size exceeds ``memory_budget_gb``. A streamed batch
is its own B-row training table (``BatchRows``), so in-batch mining and the ``sh`` loss train on
it as on memory rows; the mining modes that score every training row need ``memory``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from trainer import features
from trainer.config import MEMORY_MINING_MODES, TrainerConfig
from trainer.inputs import data
from trainer.train import distribute

# Memory mode parses every example before it deduplicates the images: the parsed batches and
# their concatenation are alive together, so its peak is about twice the parsed split.
LOAD_PEAK_FACTOR = 2
STRING_BYTES = 64  # a parsed id: a NumPy object pointer plus a short Python bytes object
READ_PARALLELISM = 2  # files read at once and batches parsed at once
PREFETCH_BATCHES = 2
GIB = 2.0**30


def worker_shard(environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(number of workers, this worker's index) from ``TF_CONFIG``; (1, 0) without a cluster.

    The workers are the cluster's ``chief`` then its ``worker`` tasks, in the order that
    ``MultiWorkerMirroredStrategy`` numbers them.

    Raises:
        ValueError: ``TF_CONFIG`` is malformed (``distribute.parse_tf_config`` names the key).

    """
    tf_config = distribute.parse_tf_config(environ.get("TF_CONFIG"))
    if tf_config is None:
        return 1, 0
    cluster, task = tf_config["cluster"], tf_config["task"]
    chiefs = len(cluster.get("chief", []))
    offset = 0 if task["type"] == "chief" else chiefs
    return chiefs + len(cluster.get("worker", [])), offset + task["index"]


def stream_spec(transformed_spec: Mapping[str, tf.io.FixedLenFeature],
                text_keys: Sequence[str]) -> dict[str, tf.io.FixedLenFeature]:
    """The transformed features a streamed batch parses: ids, image features, text inputs.

    Raises:
        ValueError: a needed feature is not a Transform output.

    """
    keys = [features.IMAGE_ID_KEY, features.CAPTION_ID_KEY, features.IMAGE_FEATURES_XF,
            *text_keys]
    missing = sorted(set(keys) - set(transformed_spec))
    if missing:
        raise ValueError(f"transformed data has no features {missing}; it has "
                         f"{sorted(transformed_spec)}")
    return {key: transformed_spec[key] for key in keys}


def example_bytes(spec: Mapping[str, tf.io.FixedLenFeature]) -> int:
    """Bytes that one parsed example of ``spec`` takes in memory."""
    total = 0
    for feature in spec.values():
        size = STRING_BYTES if feature.dtype == tf.string else feature.dtype.size
        total += size * int(np.prod(feature.shape, dtype=np.int64))
    return total


def count_records(files: Sequence[str]) -> int:
    """Records in GZIP TFRecord ``files`` (one decompressing pass, nothing parsed)."""
    dataset = tf.data.TFRecordDataset(list(files), compression_type="GZIP")
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


@dataclasses.dataclass(frozen=True)
class StreamSplit:
    """One worker's stream of a transformed split.

    Attributes:
        files: the split's GZIP TFRecord files, sorted.
        spec: the features to parse (``stream_spec``).
        num_examples: examples in the whole split (all workers).
        shuffle_buffer: examples in the shuffle buffer.
        num_workers: workers that share the split, each reading every W-th record.
        worker_index: this worker's index in [0, num_workers).

    """

    files: tuple[str, ...]
    spec: Mapping[str, tf.io.FixedLenFeature]
    num_examples: int
    shuffle_buffer: int
    num_workers: int = 1
    worker_index: int = 0

    @property
    def num_captions(self) -> int:
        """Examples an epoch may visit on every worker: the smallest shard, ``N // W``."""
        return self.num_examples // self.num_workers

    def batches(self, batch: int, seed: int) -> tf.data.Dataset:
        """One epoch of this worker's shard in parsed batches of ``batch`` (key -> [batch, ...]).

        The file order follows ``seed``, the same on every worker, so the record-level shard
        after the interleave is a partition of the split. Sharding whole files would read less
        but give workers unequal counts, and every worker must run the same number of steps.
        The shuffle buffer's seed is this worker's own (``seed * W + index``): with one seed,
        equal shards of alternate records would be shuffled alike, so that the workers' k-th
        examples were neighbouring records (often captions of one image) at every step. The
        last partial batch is dropped, as memory mode drops it.
        """
        options = tf.data.Options()
        options.autotune.enabled = False  # as ``training.epoch_batches``: no end-of-epoch wait
        files = tf.data.Dataset.from_tensor_slices(list(self.files))
        parallel = min(len(self.files), READ_PARALLELISM)
        records = files.shuffle(len(self.files), seed=seed).interleave(
            lambda name: tf.data.TFRecordDataset(name, compression_type="GZIP"),
            cycle_length=parallel, num_parallel_calls=parallel, deterministic=True)
        records = records.shard(self.num_workers, self.worker_index)
        shuffle_seed = seed * self.num_workers + self.worker_index
        parsed = records.shuffle(self.shuffle_buffer, seed=shuffle_seed).batch(
            batch, drop_remainder=True)
        parsed = parsed.map(lambda serialized: tf.io.parse_example(serialized, dict(self.spec)),
                            num_parallel_calls=READ_PARALLELISM, deterministic=True)
        return parsed.prefetch(PREFETCH_BATCHES).with_options(options)


def choose_input(config: TrainerConfig, estimated_bytes: int | None) -> tuple[str, str]:
    """The input mode of ``config`` for a split of ``estimated_bytes`` in memory, and why.

    Args:
        config: ``input``, ``memory_budget_gb`` and the mining mode are read.
        estimated_bytes: the split's estimated memory-mode peak (None: not estimated, only
            allowed when ``config.input`` is not ``auto``).

    Returns:
        (``"memory"`` or ``"stream"``, a one-line reason for the Trainer log).

    Raises:
        ValueError: ``auto`` with a mining mode that needs memory and a split over budget.

    """
    if config.input != "auto":
        return config.input, f"trainer.input={config.input!r}"
    budget = config.memory_budget_gb * GIB
    size = (f"the training split needs about {estimated_bytes / GIB:.2f} GiB in memory, "
            f"budget trainer.memory_budget_gb={config.memory_budget_gb:g}")
    if estimated_bytes <= budget:
        return "memory", f"trainer.input='auto': {size}"
    if config.mining_mode in MEMORY_MINING_MODES:
        raise ValueError(f"trainer.input='auto': {size}, but mining mode "
                         f"{config.mining_mode!r} needs the split in memory: raise "
                         "trainer.memory_budget_gb or use trainer.mining='in_batch'")
    return "stream", f"trainer.input='auto': {size}; streaming"


def training_input(config: TrainerConfig, file_patterns: Sequence[str] | str,
                   tf_transform_output: tft.TFTransformOutput, text_keys: Sequence[str],
                   environ: Mapping[str, str] = os.environ) -> data.SplitTables | StreamSplit:
    """The training split as ``config.input`` (and, for ``auto``, its size) decides.

    Logs the choice and its reason once. ``stream`` shards by ``TF_CONFIG`` (``worker_shard``).
    """
    spec = stream_spec(tf_transform_output.transformed_feature_spec(), text_keys)
    files = data.matching_files(file_patterns)
    count = None if config.input == "memory" else count_records(files)
    estimate = None if count is None else LOAD_PEAK_FACTOR * count * example_bytes(spec)
    mode, reason = choose_input(config, estimate)
    logging.info("training input: %s (%s)", mode, reason)
    if mode == "memory":
        return data.load_split(file_patterns, tf_transform_output, text_keys)
    num_workers, worker_index = worker_shard(environ)
    split = StreamSplit(tuple(files), spec, count, config.shuffle_buffer, num_workers,
                        worker_index)
    # Each worker reads batches of its share of the global batch (``training.step_sizes``).
    local_batch = max(min(config.batch_size, count) // num_workers, 1)
    dropped = split.num_captions % local_batch
    logging.info("stream: worker %d of %d trains on %d of the split's %d examples per epoch "
                 "(%d beyond the last full batch are skipped)", worker_index, num_workers,
                 split.num_captions - dropped, count, dropped)
    return split


def id_keys(ids: tf.Tensor) -> tf.Tensor:
    """int64 keys [n] of string ids [n]: their 64-bit fingerprints, the same in every process.

    Workers compare the keys of their batches' images and captions; two ids share a key with
    probability about n^2 / 2^64 over n distinct ids (below 1e-8 for a million).
    """
    return tf.strings.to_hash_bucket_fast(ids, 2**63 - 1)


class BatchRows:
    """A streamed batch as a B-row training table, with ``TrainingRows``' interface.

    Captions are rows 0..B-1; images are the batch's distinct ``image_id`` values, so that
    ``text_image_index`` tells in-batch mining which pairs share an image, as the training
    split's image rows do in memory mode. These rows are the batch's own: across workers, a
    pair is named by the keys of its ids (``image_keys``, ``caption_keys``). The text tower runs
    whole (no frozen-prefix cache: that is computed once per in-memory split).

    Attributes:
        image_tower: the image tower.
        text_tower: the text tower.
        text_prefix: always None.
        image_features: [N_i, D] features of the batch's distinct images (None: no batch).
        text: the text tower's inputs, key -> [B, ...] (None: no batch).
        text_image_index: [B] int64 image row of each caption (None: no batch).
        caption_index: [B] int64 ``0..B-1`` (None: no batch).
        image_key: [N_i] int64 ``id_keys`` of the distinct images' ``image_id`` (None: no batch).
        caption_key: [B] int64 ``id_keys`` of the captions' ``caption_id`` (None: no batch).

    """

    def __init__(self, image_tower: keras.Model, text_tower: keras.Model,
                 examples: Mapping[str, tf.Tensor] | None = None):
        """Takes the towers and a parsed batch (None: the towers only, between batches)."""
        self.image_tower, self.text_tower, self.text_prefix = image_tower, text_tower, None
        self.image_features = self.text = self.text_image_index = self.caption_index = None
        self.image_key = self.caption_key = None
        if examples is None:
            return
        ids = tf.reshape(examples[features.IMAGE_ID_KEY], [-1])
        unique, index = tf.unique(ids)
        first = tf.math.unsorted_segment_min(tf.range(tf.size(ids)), index, tf.size(unique))
        self.image_features = tf.gather(examples[features.IMAGE_FEATURES_XF], first)
        skip = (features.IMAGE_ID_KEY, features.CAPTION_ID_KEY, features.IMAGE_FEATURES_XF)
        self.text = {key: value for key, value in examples.items() if key not in skip}
        self.text_image_index = tf.cast(index, tf.int64)
        self.caption_index = tf.range(tf.size(ids, out_type=tf.int64))
        self.image_key = id_keys(unique)
        self.caption_key = id_keys(tf.reshape(examples[features.CAPTION_ID_KEY], [-1]))

    def images(self, index: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Image rows ``index`` [k] -> [k, d] embeddings."""
        return self.image_tower(tf.gather(self.image_features, index), training=training)

    def captions(self, index: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Caption rows ``index`` [k] -> [k, d] embeddings."""
        inputs = {key: tf.gather(value, index) for key, value in self.text.items()}
        return self.text_tower(inputs, training=training)

    def image_keys(self, index: tf.Tensor) -> tf.Tensor:
        """Keys [k] int64 of image rows ``index`` [k], comparable across workers."""
        return tf.gather(self.image_key, index)

    def caption_keys(self, index: tf.Tensor) -> tf.Tensor:
        """Keys [k] int64 of caption rows ``index`` [k], comparable across workers."""
        return tf.gather(self.caption_key, index)
