"""The training loop: Adam with the paper's step schedule, hard-negative mining, best-on-rsum.

One epoch visits every training caption once (with its image) in a seeded shuffle. Each step
embeds the batch, mines the hardest negatives (in the batch, or over the whole training set with
``trainer.global_mining``), re-encodes global negatives through the towers so that gradients reach
them, and applies the triplet loss. After every epoch the eval split is embedded and scored with
``trainer.metrics.retrieval_metrics``; the towers of the best eval rsum are kept.
"""

from __future__ import annotations

import dataclasses
import os
import time

import tensorflow as tf
import tf_keras as keras

from trainer import (
    evaluation,
    frozen_prefix,
    global_mining,
    losses,
    minilm,
    mining,
    optimization,
    towers,
)
from trainer.config import TrainerConfig
from trainer.data import SplitTables


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
    """Optimizer, device-resident training tables, optional embedding bank, and the train step.

    A ``minilm`` text tower's fine-tuned layers get their own, lower learning rate
    (``trainer.optimization``); with a frozen bottom, its output for the training captions is
    computed once (``trainer.frozen_prefix``) and each step runs only the rest of the tower
    (``cache_frozen_text=False`` runs the whole tower every step instead). In exact global
    mining, a dropout-free linear image tower's products ``x @ W`` of all training images, which
    mining computes anyway, are also the step's image outputs (``towers.rows_of_products``:
    same values and gradients, one matmul less per step; ``reuse_image_products=False`` runs
    the tower instead).
    """

    def __init__(self, config: TrainerConfig, image_tower: keras.Model, text_tower: keras.Model,
                 train: SplitTables, steps_per_epoch: int, cache_frozen_text: bool = True,
                 reuse_image_products: bool = True):
        super().__init__(name="pair_trainer")
        self.config, self.image_tower, self.text_tower = config, image_tower, text_tower
        self.schedule = optimization.step_schedule(config, steps_per_epoch)
        encoder = minilm.encoder_variables(text_tower) if config.text_tower == "minilm" else []
        self.optimizer = optimization.make_optimizer(config, self.schedule, steps_per_epoch,
                                                     encoder)
        self.text_prefix = (frozen_prefix.for_tower(config, text_tower, train.text,
                                                    config.eval_batch_size)
                            if cache_frozen_text else None)
        self.images = tf.constant(train.image_features)
        self.text = {key: tf.constant(value) for key, value in train.text.items()}
        self.text_image_index = tf.constant(train.text_image_index)
        self.num_images, self.num_captions = len(train.image_features), train.num_captions
        self.miner = None
        if config.mining == "global" and config.loss != "sh":
            self.miner = global_mining.GlobalMiner(
                config,
                global_mining.Modality(image_tower, self.images, self.embed_images,
                                       tf.range(self.num_images, dtype=tf.int64),
                                       self.num_images),
                global_mining.Modality(text_tower, self.text, self.embed_text,
                                       self.text_image_index, self.num_captions))
        self.reused_head = None
        if reuse_image_products and self.miner is not None and self.miner.has_image_products:
            self.reused_head = towers.reusable_training_head(image_tower, self.images)

    @property
    def bank(self) -> mining.EmbeddingBank | None:
        """The global-mining bank (``refresh_steps > 1``), else None."""
        return None if self.miner is None else self.miner.bank

    def embed_images(self, index: tf.Tensor, training: bool = False) -> tf.Tensor:
        """[B] image rows -> [B, d] embeddings."""
        return self.image_tower(tf.gather(self.images, index), training=training)

    def embed_text(self, index: tf.Tensor, training: bool = False) -> tf.Tensor:
        """[B] caption rows -> [B, d] embeddings."""
        if self.text_prefix is not None:
            return self.text_prefix.embed(index)
        inputs = {key: tf.gather(value, index) for key, value in self.text.items()}
        return self.text_tower(inputs, training=training)

    def refresh_bank(self) -> None:
        """Re-encodes the whole training set into the global-mining bank."""
        self.miner.refresh()

    def global_negative_index(self, image: tf.Tensor, text: tf.Tensor, image_index: tf.Tensor,
                              caption_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``GlobalMiner.negative_index``: training rows of a batch's hardest negatives."""
        return self.miner.negative_index(image, text, image_index, caption_index)

    @tf.function
    def mine_batch(self, caption_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``global_negative_index`` of the batch ``caption_index`` [B], without a training step.

        Embeds the batch in inference mode; with a bank, its batch rows are updated first.
        Where exact mining scores the image products, the image queries are read from them,
        as in ``train_step``.
        """
        image_index = tf.gather(self.text_image_index, caption_index)
        text = self.embed_text(caption_index)
        if self.miner.has_image_products:
            return self.miner.negative_index(None, text, image_index, caption_index,
                                             self.miner.image_products())
        return self.global_negative_index(self.embed_images(image_index), text, image_index,
                                          caption_index)

    def _negatives(self, image, text, image_index, caption_index):
        """Hard negatives [B, d], [B, d] and neg_is_pair [B] (in-batch or global)."""
        if self.config.mining != "global":
            neg_i, neg_t = mining.in_batch_negatives(image, text, image_index)
            self._check_found(neg_i, neg_t)
            is_pair = tf.equal(tf.gather(image_index, neg_i), tf.gather(image_index, neg_t))
            return tf.gather(image, neg_i), tf.gather(text, neg_t), is_pair
        neg_i, neg_t = self.global_negative_index(image, text, image_index, caption_index)
        self._check_found(neg_i, neg_t)
        is_pair = tf.equal(neg_i, tf.gather(self.text_image_index, neg_t))
        return (self.embed_images(neg_i, training=True), self.embed_text(neg_t, training=True),
                is_pair)

    def _images_and_negatives(self, text, image_index, caption_index):
        """Batch images [B, d] and ``_negatives``, the images read from this step's products.

        Mining needs no batch image outputs (its image queries come from the products), so the
        batch's and the negatives' images are read together: one gather, one normalization and
        one gradient matmul.
        """
        products = self.miner.image_products()
        neg_i, neg_t = self.miner.negative_index(None, text, image_index, caption_index,
                                                 products)
        self._check_found(neg_i, neg_t)
        rows = tf.concat([image_index, neg_i], axis=0)
        images = towers.l2_normalize(towers.rows_of_products(*self.reused_head, products, rows))
        image, neg_image = tf.split(images, 2)
        is_pair = tf.equal(neg_i, tf.gather(self.text_image_index, neg_t))
        return image, (neg_image, self.embed_text(neg_t, training=True), is_pair)

    @staticmethod
    def _check_found(neg_image_index: tf.Tensor, neg_text_index: tf.Tensor) -> None:
        message = ("a batch has no caption/image of another image to use as a negative; "
                   "use a larger batch_size")
        tf.debugging.assert_non_negative(neg_image_index, message=message)
        tf.debugging.assert_non_negative(neg_text_index, message=message)

    @tf.function
    def train_step(self, caption_index: tf.Tensor) -> dict[str, tf.Tensor]:
        """One optimizer step on the captions ``caption_index`` [B]; returns the loss terms."""
        config = self.config
        image_index = tf.gather(self.text_image_index, caption_index)
        with tf.GradientTape() as tape:
            text = self.embed_text(caption_index, training=True)
            if config.loss == "sh":
                image = self.embed_images(image_index, training=True)
                terms = losses.loss_terms("sh", image, text, margin=config.margin,
                                          image_ids=image_index)
            else:
                if self.reused_head is not None:
                    image, negatives = self._images_and_negatives(text, image_index,
                                                                  caption_index)
                else:
                    image = self.embed_images(image_index, training=True)
                    negatives = self._negatives(image, text, image_index, caption_index)
                terms = losses.loss_terms(config.loss, image, text, *negatives, config.margin,
                                          config.intra_margin)
            loss = tf.add_n(list(terms.values()))
        variables = self.image_tower.trainable_variables + self.text_tower.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return {"loss": loss, **terms}


def _train_epoch(trainer: PairTrainer, dataset: tf.data.Dataset, writer, steps: int,
                 verbose: int) -> dict[str, float]:
    """Runs one epoch; logs terms to TensorBoard and a Keras progress bar; returns their means."""
    config, bank = trainer.config, trainer.bank
    progress = keras.utils.Progbar(steps, verbose=verbose)
    sums: dict[str, float] = {}
    for step, caption_index in enumerate(dataset.take(steps)):
        if bank is not None and int(trainer.optimizer.iterations) % config.refresh_steps == 0:
            trainer.refresh_bank()
        terms = {name: float(value) for name, value in trainer.train_step(caption_index).items()}
        iteration = int(trainer.optimizer.iterations)
        if iteration % config.log_every_steps == 0:
            with writer.as_default(step=iteration):
                for name, value in terms.items():
                    tf.summary.scalar(f"train/{name}", value)
                tf.summary.scalar("train/learning_rate",
                                  float(trainer.optimizer.learning_rate))
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


def _keep_if_best(result: TrainResult, epoch: int, scores: dict[str, float],
                  checkpoint: tf.train.Checkpoint, prefix: str) -> bool:
    """Records ``scores``; writes the towers when rsum improved. Returns whether it did."""
    if result.best_metrics and scores["rsum"] <= result.best_metrics["rsum"]:
        return False
    result.best_metrics, result.best_epoch = scores, epoch
    checkpoint.write(prefix)
    return True


def train(config: TrainerConfig, image_tower: keras.Model, text_tower: keras.Model,
          train_split: SplitTables, eval_split: SplitTables, work_dir: str,
          max_steps: int | None = None, verbose: int = 1) -> TrainResult:
    """Trains the towers in place and leaves them at their best eval rsum.

    Args:
        config: hyperparameters.
        image_tower: image tower (variables built).
        text_tower: text tower (variables built).
        train_split: training tables.
        eval_split: eval tables (checkpoint selection and early stopping).
        work_dir: TensorBoard logs (``logs/``) and the best checkpoint (``best/``) go here.
        max_steps: optional cap on the total number of optimizer steps.
        verbose: Keras progress-bar verbosity (0 silent, 1 bar, 2 one line per epoch).

    Returns:
        The ``TrainResult``.

    """
    set_seeds(config.seed)
    batch = min(config.batch_size, train_split.num_captions)
    steps = train_split.num_captions // batch
    trainer = PairTrainer(config, image_tower, text_tower, train_split, steps)
    eval_prefix = frozen_prefix.for_tower(config, text_tower, eval_split.text,
                                          config.eval_batch_size)
    writer = tf.summary.create_file_writer(os.path.join(work_dir, "logs"))
    checkpoint = tf.train.Checkpoint(image_tower=image_tower, text_tower=text_tower)
    prefix = os.path.join(work_dir, "best", "towers")
    result = TrainResult({}, 0, [], [])
    for epoch in range(1, config.epochs + 1):
        epoch_steps = steps if max_steps is None else min(steps, max_steps - (epoch - 1) * steps)
        if epoch_steps <= 0:
            break
        start = time.perf_counter()
        batches = epoch_batches(train_split.num_captions, batch, config.seed + epoch)
        mean_terms = _train_epoch(trainer, batches, writer, epoch_steps, verbose)
        result.epoch_seconds.append(time.perf_counter() - start)
        scores = evaluation.evaluate(image_tower, text_tower, eval_split,
                                     config.eval_batch_size, eval_prefix)
        _log_epoch(writer, epoch, scores, verbose)
        result.history.append({**mean_terms, **scores})
        patience = config.early_stopping_patience
        if (not _keep_if_best(result, epoch, scores, checkpoint, prefix)
                and patience is not None and epoch - result.best_epoch >= patience):
            break
    if result.best_epoch:
        checkpoint.read(prefix).assert_consumed()
    writer.flush()
    return result


def _log_epoch(writer, epoch: int, scores: dict[str, float], verbose: int) -> None:
    with writer.as_default(step=epoch):
        for name, value in scores.items():
            tf.summary.scalar(f"eval/{name}", value)
    if verbose:
        recalls = " ".join(f"{k}={scores[k]:.1f}" for k in
                           ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"))
        print(f"epoch {epoch} eval: {recalls}", flush=True)
