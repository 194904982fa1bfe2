"""The training loop: Adam with the paper's step schedule, hard-negative mining, best-on-rsum.

One epoch visits every training caption once (with its image) in a seeded shuffle. Each step
embeds the batch's captions, lets the configured negative strategy
(``trainer.negatives.strategies``) embed
its images and find their hard negatives (in the batch, or over the whole training set), and
applies the triplet loss. After every epoch the eval split is embedded and scored with
``trainer.metrics.retrieval_metrics``; the towers of the best eval rsum are kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from typing import NamedTuple

import tensorflow as tf
import tf_keras as keras

from trainer import losses
from trainer.config import TrainerConfig
from trainer.inputs import frozen_prefix, stream_input
from trainer.inputs.data import SplitTables
from trainer.inputs.training_rows import TrainingRows
from trainer.model import minilm, precision
from trainer.negatives import strategies as negatives
from trainer.train import distribute, evaluation, optimization


class Splits(NamedTuple):
    """What ``train`` reads.

    Attributes:
        train: training tables, or the training stream (``trainer.inputs.stream_input``).
        eval: eval tables (checkpoint selection and early stopping).

    """

    train: SplitTables | stream_input.StreamSplit
    eval: SplitTables


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        best_metrics: eval retrieval metrics of the kept (best-rsum) towers.
        best_epoch: 1-based epoch of those towers.
        history: per epoch, the mean loss terms and the eval metrics.
        epoch_seconds: wall-clock training seconds of each epoch (evaluation excluded).

    """

    best_metrics: dict[str, float]
    best_epoch: int
    history: list[dict[str, float]]
    epoch_seconds: list[float]


class PairTrainer(tf.Module):
    """The optimizer, the training rows and a negative strategy: one training step.

    ``config.mining_mode`` picks the strategy (``trainer.negatives.strategies``) that embeds each
    batch's
    images and finds its hard negatives. A ``minilm`` text tower's fine-tuned layers get their
    own, lower learning rate (``trainer.train.optimization``). Built inside a ``tf.distribute``
    strategy's scope, it steps on every replica of that strategy (``trainer.train.distribute``).
    """

    def __init__(self, config: TrainerConfig, rows: TrainingRows, steps_per_epoch: int):
        """Builds the optimizer and the strategy.

        Args:
            config: hyperparameters.
            rows: the training tables and towers (``TrainingRows.for_training``).
            steps_per_epoch: optimizer steps per epoch (places the learning-rate decay).

        """
        super().__init__(name="pair_trainer")
        self.config, self.rows = config, rows
        self.schedule = optimization.step_schedule(config, steps_per_epoch)
        encoder = (minilm.encoder_variables(rows.text_tower) if config.text_tower == "minilm"
                   else [])
        self.optimizer = optimization.make_optimizer(config, self.schedule, steps_per_epoch,
                                                     encoder)
        self.strategy = negatives.for_config(config, rows)
        self.loss = losses.TripletLoss.from_config(config)
        self.distribution = tf.distribute.get_strategy()

    # No AutoGraph: the step's loops are explicit tf.while_loops and its ifs test Python
    # values; converting every Keras layer it calls would add seconds to the trace.
    @tf.function(autograph=False)
    def train_step(self, element: tf.Tensor | Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One optimizer step; returns the loss terms averaged over the replicas.

        ``element``: the global batch's training caption rows [B] (``memory`` input), each
        replica stepping on its slice (``trainer.train.distribute``), or this worker's streamed
        batch
        of parsed examples [B / workers] (``stream``), which is its own table.
        """
        local = (element if isinstance(element, Mapping)
                 else distribute.split_batch(self.distribution, element))
        terms = self.distribution.run(self.replica_step, args=(local,))
        mean = tf.distribute.ReduceOp.MEAN
        return {name: self.distribution.reduce(mean, value, axis=None)
                for name, value in terms.items()}

    def replica_step(self, element: tf.Tensor | Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One replica's share of a step on its caption rows [b] or streamed batch.

        The loss is divided by the number of replicas: the optimizer sums their gradients.
        """
        config, rows, strategy, caption_index = self.config, self.rows, self.strategy, element
        if isinstance(element, Mapping):
            rows = stream_input.BatchRows(rows.image_tower, rows.text_tower, element)
            strategy, caption_index = negatives.for_config(config, rows), rows.caption_index
        image_index = tf.gather(rows.text_image_index, caption_index)
        with tf.GradientTape() as tape:
            text = rows.captions(caption_index, training=True)
            batch = negatives.Batch(caption_index, image_index, text)
            mined = strategy(batch)
            pairs = batch if mined.pairs is None else mined.pairs
            loss, terms = self.loss(losses.Triplets(
                mined.batch_image, pairs.text, neg_image=mined.image, neg_text=mined.text,
                neg_is_pair=mined.is_pair, image_ids=pairs.image_index))
            share = loss / self.distribution.num_replicas_in_sync
        variables = rows.image_tower.trainable_variables + rows.text_tower.trainable_variables
        gradients = tape.gradient(share, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return {"loss": loss, **terms}


def _train_epoch(trainer: PairTrainer, dataset: tf.data.Dataset, writer, steps: int,
                 verbose: int) -> dict[str, float]:
    """Runs one epoch; logs terms to TensorBoard and a Keras progress bar; returns their means."""
    config = trainer.config
    # verbose=2's one line per epoch is _log_epoch's, which adds the eval scores to the loss.
    progress = keras.utils.Progbar(steps, verbose=1 if verbose == 1 else 0)
    sums: dict[str, float] = {}
    for step, caption_index in enumerate(dataset.take(steps)):
        terms = {name: float(value) for name, value in trainer.train_step(caption_index).items()}
        # get_value: under a strategy these are distributed variables, which int() refuses
        iteration = int(keras.backend.get_value(trainer.optimizer.iterations))
        if iteration % config.log_every_steps == 0:
            with writer.as_default(step=iteration):
                for name, value in terms.items():
                    tf.summary.scalar(f"train/{name}", value)
                tf.summary.scalar("train/learning_rate",
                                  float(keras.backend.get_value(trainer.optimizer.learning_rate)))
        sums = {name: sums.get(name, 0.0) + value for name, value in terms.items()}
        progress.update(step + 1, values=list(terms.items()))
    return {name: value / steps for name, value in sums.items()}


def set_seeds(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow (call before building the towers, too)."""
    keras.utils.set_random_seed(seed)


def epoch_batches(num_captions: int, batch: int, seed: int) -> tf.data.Dataset:
    """Caption indices [batch] of one epoch, shuffled with a per-epoch seed.

    tf.data autotuning is off: there is nothing to tune in range -> shuffle -> batch, and with
    it on, deleting an epoch's iterator can wait for the autotune thread with every thread idle
    for many seconds at the end of an epoch of a long run.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return (tf.data.Dataset.range(num_captions).shuffle(num_captions, seed=seed)
            .batch(batch, drop_remainder=True).with_options(options))


def _epoch_input(split: SplitTables | stream_input.StreamSplit, batch: int,
                 seed: int) -> tf.data.Dataset:
    """One epoch's batches: caption rows of memory tables, or parsed examples of a stream."""
    if isinstance(split, stream_input.StreamSplit):
        return split.batches(batch, seed)
    return epoch_batches(split.num_captions, batch, seed)


def step_sizes(config: TrainerConfig, split: SplitTables | stream_input.StreamSplit,
               replicas: int) -> tuple[int, int]:
    """(batch this worker reads per step, steps per epoch) of a training split.

    The global batch is ``config.batch_size`` (at most the split). From in-memory tables every
    worker reads the global batch's caption rows and each replica steps on its slice; a stream
    worker reads its own shard (``StreamSplit.num_captions`` examples) in batches of its
    replica's share, global / replicas, so that the replicas' batches together are the
    global batch.

    Raises:
        ValueError: the global batch does not divide among the replicas, or a stream whose
            workers do not hold one replica each.

    """
    stream = isinstance(split, stream_input.StreamSplit)
    batch = min(config.batch_size, split.num_examples if stream else split.num_captions)
    if batch % replicas:
        raise ValueError(f"TrainerConfig.batch_size={batch}: the global batch must divide "
                         f"evenly among the {replicas} replicas")
    if not stream:
        return batch, split.num_captions // batch
    if split.num_workers != replicas:
        raise ValueError(f"TrainerConfig.input='stream': {replicas} replica(s) on "
                         f"{split.num_workers} worker(s) of TF_CONFIG; each worker streams "
                         "its shard to one replica, so give each worker one device, or use "
                         "input='memory'")
    return batch // replicas, split.num_captions // (batch // replicas)


def _keep_if_best(result: TrainResult, epoch: int, scores: dict[str, float],
                  checkpoint: tf.train.Checkpoint, prefix: str) -> bool:
    """Records ``scores``; writes the towers when rsum improved. Returns whether it did."""
    if result.best_metrics and scores["rsum"] <= result.best_metrics["rsum"]:
        return False
    result.best_metrics, result.best_epoch = scores, epoch
    checkpoint.write(prefix)
    return True


def _training_rows(config: TrainerConfig, image_tower: keras.Model, text_tower: keras.Model,
                   split: SplitTables | stream_input.StreamSplit, policy: precision.Policy,
                   verbose: int) -> TrainingRows | stream_input.BatchRows:
    """The training rows; a cached MiniLM bottom and top compute in ``policy``, as it says."""
    if isinstance(split, stream_input.StreamSplit):
        return stream_input.BatchRows(image_tower, text_tower)
    rows = TrainingRows.for_training(config, image_tower, text_tower, split, policy)
    if rows.text_prefix is not None:
        message = f"MiniLM frozen bottom and fine-tuned layers: {policy.reason}"
        logging.info("%s", message)
        if verbose:
            print(message, flush=True)
    return rows


def train(config: TrainerConfig, towers: tuple[keras.Model, keras.Model], splits: Splits,
          work_dir: str, max_steps: int | None = None, verbose: int = 1) -> TrainResult:
    """Trains the towers in place and leaves them at their best eval rsum.

    Args:
        config: hyperparameters.
        towers: ``(image_tower, text_tower)``, variables built (``towers.build_towers``).
        splits: the training and eval splits.
        work_dir: TensorBoard logs (``logs/``) and the best checkpoint (``best/``) go here.
        max_steps: optional cap on the total number of optimizer steps.
        verbose: 0 silent; 1 a Keras progress bar and a line per epoch; 2 the line per epoch.

    Returns:
        The ``TrainResult``.

    """
    (image_tower, text_tower), (train_split, eval_split) = towers, splits
    set_seeds(config.seed)
    batch, steps = step_sizes(config, train_split, distribute.num_replicas())
    policy = precision.resolve(config.precision)
    rows = _training_rows(config, image_tower, text_tower, train_split, policy, verbose)
    trainer = PairTrainer(config, rows, steps)
    # The epoch kept is the one of best rsum as the exported float32 towers compute it, so the
    # eval caption states are float32 whatever the step's precision.
    eval_prefix = frozen_prefix.for_tower(config, text_tower, eval_split.text,
                                          config.eval_batch_size, precision.FLOAT32)
    writer = tf.summary.create_file_writer(os.path.join(work_dir, "logs"))
    checkpoint = tf.train.Checkpoint(image_tower=image_tower, text_tower=text_tower)
    prefix = os.path.join(work_dir, "best", "towers")
    result = TrainResult({}, 0, [], [])
    for epoch in range(1, config.epochs + 1):
        epoch_steps = steps if max_steps is None else min(steps, max_steps - (epoch - 1) * steps)
        if epoch_steps <= 0:
            break
        start = time.perf_counter()
        batches = _epoch_input(train_split, batch, config.seed + epoch)
        mean_terms = _train_epoch(trainer, batches, writer, epoch_steps, verbose)
        result.epoch_seconds.append(time.perf_counter() - start)
        scores = evaluation.evaluate(image_tower, text_tower, eval_split,
                                     config.eval_batch_size, eval_prefix)
        _log_epoch(writer, epoch, scores, mean_terms.get("loss", float("nan")),
                   verbose, result.epoch_seconds[-1] / max(epoch_steps, 1))
        result.history.append({**mean_terms, **scores})
        patience = config.early_stopping_patience
        if (not _keep_if_best(result, epoch, scores, checkpoint, prefix)
                and patience is not None and epoch - result.best_epoch >= patience):
            break
    if result.best_epoch:
        checkpoint.read(prefix).assert_consumed()
    writer.flush()
    return result


def _log_epoch(writer, epoch: int, scores: dict[str, float], loss: float, verbose: int,
               step_seconds: float) -> None:
    """Writes the eval scores; prints them with the epoch's mean loss and step time.

    The step time is printed so that it can be compared with ``bench_minilm_finetune``'s on
    the same host; the first epoch's includes tracing the step.

    Args:
        writer: the TensorBoard summary writer.
        epoch: the epoch's number, from 1.
        scores: the eval metrics.
        loss: the epoch's mean training loss.
        verbose: print the line when nonzero.
        step_seconds: the epoch's wall time per step.

    """
    with writer.as_default(step=epoch):
        tf.summary.scalar("train/step_seconds", step_seconds)
        for name, value in scores.items():
            tf.summary.scalar(f"eval/{name}", value)
    if verbose:
        recalls = " ".join(f"{k}={scores[k]:.1f}" for k in
                           ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"))
        print(f"epoch {epoch} ({step_seconds:.3f} s/step) loss {loss:.4f} "
              f"eval: {recalls}", flush=True)
