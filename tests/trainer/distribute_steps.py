"""One process of the multi-worker tests: training steps and mined negatives on generated data.

Run as ``python -m tests.trainer.distribute_steps OUT_DIR`` with or without ``TF_CONFIG``; the
chief writes ``<variant>.npz`` (per-step losses, final tower weights, or mined negative rows) for
every variant of ``VARIANTS`` and ``STREAM_VARIANTS`` into OUT_DIR. Every process sees the same
global batches in the same order; under ``TF_CONFIG`` each replica steps on its slice of them
(in-memory rows) or streams its shard of them (``stream_records``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported

import pathlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from trainer import features
from trainer.config import TrainerConfig  # noqa: E402
from trainer.inputs import stream_input
from trainer.inputs.data import SplitTables  # noqa: E402
from trainer.inputs.training_rows import TrainingRows  # noqa: E402
from trainer.model import towers
from trainer.negatives import strategies as negatives
from trainer.train import distribute, training

NUM_IMAGES, CAPTIONS_PER_IMAGE, IMAGE_DIM, CAPTION_DIM = 32, 2, 24, 6
GLOBAL_BATCH, STEPS = 16, 10
# name -> (loss, mining, optimizer, negatives from the local batch only); mining "global" is
# exact (every row scored at every step), "bank" a bank re-encoded every BANK_REFRESH steps
VARIANTS = {
    "fhn_adam": ("fhn", "in_batch", "adam", False),
    "hn_adam": ("hn", "in_batch", "adam", False),
    "fhn_sgd": ("fhn", "in_batch", "sgd", False),
    "hn_sgd": ("hn", "in_batch", "sgd", False),
    "fhn_adam_local": ("fhn", "in_batch", "adam", True),
    "fhn_exact": ("fhn", "global", "adam", False),
    "fhn_bank": ("fhn", "bank", "adam", False),
}
BANK_REFRESH = 3
# stream variants: name -> pairs compared across workers by their batch rows, not their ids
STREAM_VARIANTS = {"fhn_stream": False, "fhn_stream_by_row": True}


def generated_split(seed: int = 0) -> SplitTables:
    """32 images (24 features, wider than d: the exact mode's products path) x 2 captions."""
    rng = np.random.default_rng(seed)
    captions = NUM_IMAGES * CAPTIONS_PER_IMAGE
    return SplitTables(
        image_features=rng.normal(size=(NUM_IMAGES, IMAGE_DIM)).astype(np.float32),
        image_ids=np.array([f"{i}.jpg".encode() for i in range(NUM_IMAGES)]),
        text={features.CAPTION_FEATURES_XF:
              rng.normal(size=(captions, CAPTION_DIM)).astype(np.float32)},
        text_image_index=np.repeat(np.arange(NUM_IMAGES, dtype=np.int64), CAPTIONS_PER_IMAGE),
        caption_ids=np.array([f"{i}".encode() for i in range(captions)]))


def global_batches(num_captions: int) -> np.ndarray:
    """[STEPS, GLOBAL_BATCH] caption rows: consecutive seeded permutations of all captions."""
    rng = np.random.default_rng(1)
    epochs = -(-STEPS * GLOBAL_BATCH // num_captions)
    order = np.concatenate([rng.permutation(num_captions) for _ in range(epochs)])
    return order[:STEPS * GLOBAL_BATCH].reshape(STEPS, GLOBAL_BATCH)


def config_of(loss: str, mining: str) -> TrainerConfig:
    """The variants' config; ``mining``: ``in_batch``, ``global`` (exact) or ``bank``."""
    return TrainerConfig(loss=loss, mining="global" if mining == "bank" else mining,
                         refresh_steps=BANK_REFRESH if mining == "bank" else 1,
                         text_tower="linear", embedding_dim=16, batch_size=GLOBAL_BATCH,
                         learning_rate=0.01, epochs=1, image_backbone="")


def _mined_rows(trainer: training.PairTrainer, strategy, batch: tf.Tensor) -> list[np.ndarray]:
    """The global batch's negative image and caption rows, as the replicas mined them."""
    rows = trainer.rows

    def replica(local):
        text = rows.captions(local, training=True)
        found = trainer.strategy(negatives.Batch(
            local, tf.gather(rows.text_image_index, local), text))
        return distribute.gather(found.image_row), distribute.gather(found.caption_row)

    found = tf.function(lambda b: strategy.run(
        replica, args=(distribute.split_batch(strategy, b),)))(batch)
    return [strategy.experimental_local_results(part)[0].numpy() for part in found]


def run_variant(strategy, loss: str, mining: str, optimizer: str) -> dict[str, np.ndarray]:
    """STEPS training steps from the seeded towers; losses, weights and mined rows.

    Exact mining is asked for the first batch's negatives before training; the bank after it,
    when its rows are a refresh of some steps ago and the batches written since.
    """
    config = config_of(loss, mining)
    split = generated_split()
    batches = global_batches(split.num_captions)
    with strategy.scope():
        training.set_seeds(config.seed)
        image_tower, text_tower = towers.build_towers(config, 0, IMAGE_DIM, CAPTION_DIM)
        trainer = training.PairTrainer(config, TrainingRows(image_tower, text_tower, split),
                                       STEPS)
        if optimizer == "sgd":
            trainer.optimizer = keras.optimizers.SGD(0.5)
        out = {}
        if mining == "global":
            image_rows, caption_rows = _mined_rows(trainer, strategy, tf.constant(batches[0]))
            out.update(neg_image=image_rows, neg_caption=caption_rows)
        losses = [float(trainer.train_step(tf.constant(b))["loss"]) for b in batches]
        if mining == "bank":
            image_rows, caption_rows = _mined_rows(trainer, strategy, tf.constant(batches[0]))
            out.update(neg_image=image_rows, neg_caption=caption_rows)
    weights = [v.numpy() for v in image_tower.weights + text_tower.weights]
    return {**out, "losses": np.array(losses), **{f"w{i}": w for i, w in enumerate(weights)}}


def stream_records() -> list[tuple[int, int]]:
    """(image, caption of the image) of each record, in the order of the stream's one file.

    Global batch k holds images 8k..8k+7: caption 0 of image 8k+j at position 2j, which the
    first of 2 workers reads (record shards alternate), caption 1 of image 8k+(j+1) % 8 at
    2j+1, which the second reads. Each image has a caption on both workers, and worker 1's
    batch row j is worker 0's row j+1: batch rows do not name the same image on both.
    """
    per_batch = GLOBAL_BATCH // 2
    return [(k * per_batch + (j + caption) % per_batch, caption)
            for k in range(NUM_IMAGES // per_batch) for j in range(per_batch)
            for caption in (0, 1)]


def stream_split(folder: pathlib.Path) -> stream_input.StreamSplit:
    """``generated_split`` as this worker's stream of one GZIP file of ``stream_records``."""
    split, path = generated_split(), str(folder / "part-0.gz")
    captions = split.text[features.CAPTION_FEATURES_XF]

    def feature(values) -> tf.train.Feature:
        if isinstance(values, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[values]))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for image, caption in stream_records():
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                features.IMAGE_ID_KEY: feature(split.image_ids[image]),
                features.CAPTION_ID_KEY: feature(f"{image}#{caption}".encode()),
                features.IMAGE_FEATURES_XF: feature(split.image_features[image]),
                features.CAPTION_FEATURES_XF: feature(
                    captions[image * CAPTIONS_PER_IMAGE + caption])})).SerializeToString())
    spec = {features.IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string),
            features.CAPTION_ID_KEY: tf.io.FixedLenFeature([], tf.string),
            features.IMAGE_FEATURES_XF: tf.io.FixedLenFeature([IMAGE_DIM], tf.float32),
            features.CAPTION_FEATURES_XF: tf.io.FixedLenFeature([CAPTION_DIM], tf.float32)}
    workers, index = stream_input.worker_shard()
    # a buffer of one keeps the file order: one process's batch k is the 2 workers' batches k
    return stream_input.StreamSplit((path,), spec, split.num_captions, 1, workers, index)


def run_stream_variant(strategy, split: stream_input.StreamSplit) -> dict[str, np.ndarray]:
    """STEPS ``fhn`` in-batch steps on the stream (epochs repeat its order); losses, weights."""
    config = config_of("fhn", "in_batch")
    batch, steps = training.step_sizes(config, split, strategy.num_replicas_in_sync)
    with strategy.scope():
        training.set_seeds(config.seed)
        image_tower, text_tower = towers.build_towers(config, 0, IMAGE_DIM, CAPTION_DIM)
        trainer = training.PairTrainer(
            config, stream_input.BatchRows(image_tower, text_tower), steps)
        losses, epoch = [], 0
        while len(losses) < STEPS:
            losses += [float(trainer.train_step(element)["loss"])
                       for element in split.batches(batch, epoch).take(STEPS - len(losses))]
            epoch += 1
    weights = [v.numpy() for v in image_tower.weights + text_tower.weights]
    return {"losses": np.array(losses), **{f"w{i}": w for i, w in enumerate(weights)}}


def _stream_variants(strategy, out_dir: str, chief: bool) -> None:
    """Runs ``STREAM_VARIANTS``; the by-row one compares pairs by their batch rows."""
    keys = stream_input.BatchRows.image_keys, stream_input.BatchRows.caption_keys
    with tempfile.TemporaryDirectory(prefix="stream_steps_") as folder:
        split = stream_split(pathlib.Path(folder))
        for name, by_row in STREAM_VARIANTS.items():
            if by_row:
                stream_input.BatchRows.image_keys = lambda self, index: index
                stream_input.BatchRows.caption_keys = lambda self, index: index
            result = run_stream_variant(strategy, split)
            stream_input.BatchRows.image_keys, stream_input.BatchRows.caption_keys = keys
            if chief:
                np.savez(pathlib.Path(out_dir) / f"{name}.npz", **result)


def main(out_dir: str) -> None:
    config = config_of("fhn", "in_batch")
    strategy = distribute.strategy_for(config)
    distribute.check_same_config(strategy, config)
    chief = distribute.is_chief(distribute.tf_config())
    gathers = distribute.gather, distribute.gather_with_gradient
    for name, (loss, mining, optimizer, local_only) in VARIANTS.items():
        if local_only:  # the negatives of each replica's own slice only
            distribute.gather = distribute.gather_with_gradient = lambda value: value
        result = run_variant(strategy, loss, mining, optimizer)
        distribute.gather, distribute.gather_with_gradient = gathers
        if chief:
            np.savez(pathlib.Path(out_dir) / f"{name}.npz", **result)
    _stream_variants(strategy, out_dir, chief)


if __name__ == "__main__":
    main(sys.argv[1])
