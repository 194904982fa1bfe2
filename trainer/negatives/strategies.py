"""Negative strategies: one small object per mining mode, each returning a batch's named negatives.

``TrainerConfig.mining_mode`` picks the strategy (``for_config``):

- ``none``: the ``sh`` loss sums over every in-batch negative; nothing is mined (``NoMining``).
- ``in_batch``: the hardest negatives within the batch, from one [B, B] score matrix
  (``InBatch``); the benchmarks' "fast mode".
- ``exact``: the hardest negatives among all training rows as the current towers embed them,
  re-scored at every step (``ExactGlobal``, through
  ``trainer.negatives.global_mining.GlobalMiner``).
- ``bank``: the same search over an on-device bank of embeddings, re-encoded every
  ``refresh_steps`` steps, the batch's rows at every step (``Bank``).

A strategy is called inside the training step's gradient tape with the batch (its rows and its
captions' training-mode embeddings) and returns ``Negatives``: the batch's own image embeddings
and the hard negatives, all in training mode so that gradients reach the towers through them.
The strategy embeds the batch's images because the exact mode can read them from the products
it scores anyway; every speed trick of a mode stays inside its strategy.

Across replicas (``trainer.train.distribute``), ``none`` and ``in_batch`` range over the global
batch:
they gather every replica's embeddings with their gradients and return the global pairs as
``Negatives.pairs``, so that the loss of each replica is that of one process on the global
batch. The gathered pairs are identified by their rows' keys (``image_keys``, ``caption_keys``:
the rows themselves for in-memory tables, which every worker holds whole; fingerprints of the
ids for streamed batches, whose rows are each worker's own). ``exact`` mining splits the
training rows' scoring among the replicas (``trainer.negatives.global_mining``); ``bank`` mining
keeps the
one process's bank on every replica and splits its search the same way. With one replica the
gathers return their inputs.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import tensorflow as tf

from trainer import mining
from trainer.config import TrainerConfig
from trainer.inputs.training_rows import TrainingRows
from trainer.model import towers
from trainer.negatives import embedding_bank, global_mining
from trainer.train import distribute


class Batch(NamedTuple):
    """A training batch of B (caption, image) pairs, as the strategies receive it.

    Attributes:
        caption_index: [B] int64 training caption rows.
        image_index: [B] int64 training image row of each caption.
        text: [B, d] the captions' training-mode embeddings.

    """

    caption_index: tf.Tensor
    image_index: tf.Tensor
    text: tf.Tensor


class Negatives(NamedTuple):
    """A strategy's answer for a batch: its images and the hard negatives of each pair.

    Attributes:
        batch_image: [B, d] training-mode embeddings of the batch's own images.
        image: [B, d] hardest negative image i' of each caption (None: nothing mined).
        text: [B, d] hardest negative caption c' of each image (None: nothing mined).
        is_pair: [B] bool, whether (i', c') is itself a positive pair (None: nothing mined).
        image_row: [B] int64 training image row of i' (None: nothing mined).
        caption_row: [B] int64 training caption row of c' (None: nothing mined).
        pairs: the pairs the loss ranges over, when the strategy widened the step's batch
            (cross-replica: the global batch, with ``batch_image`` and every other field of the
            same size; its ``caption_index`` and ``image_index`` and this answer's rows are
            then the rows' keys); None: the step's own batch.

    """

    batch_image: tf.Tensor
    image: tf.Tensor | None = None
    text: tf.Tensor | None = None
    is_pair: tf.Tensor | None = None
    image_row: tf.Tensor | None = None
    caption_row: tf.Tensor | None = None
    pairs: Batch | None = None


class Strategy(Protocol):
    """What the training step calls: a batch -> its ``Negatives``."""

    def __call__(self, batch: Batch) -> Negatives:
        """Embeds the batch's images and finds (and embeds) each pair's hard negatives."""


def _check_found(image_row: tf.Tensor, caption_row: tf.Tensor) -> None:
    """Fails the step when some query had no row of another image to be its negative."""
    message = ("a batch has no caption/image of another image to use as a negative; "
               "use a larger batch_size")
    tf.debugging.assert_non_negative(image_row, message=message)
    tf.debugging.assert_non_negative(caption_row, message=message)


class NoMining(tf.Module):
    """``none``: only the images; the ``sh`` loss compares every pair of the global batch."""

    def __init__(self, config: TrainerConfig, rows: TrainingRows):
        super().__init__(name="no_mining")
        del config  # nothing to configure
        self.rows = rows

    def __call__(self, batch: Batch) -> Negatives:
        """The global batch's image embeddings and pairs, no negatives."""
        image = self.rows.images(batch.image_index, training=True)
        image, pairs = global_batch(self.rows, image, batch)
        return Negatives(image, pairs=pairs)


def global_batch(rows: TrainingRows, image: tf.Tensor, batch: Batch) -> tuple[tf.Tensor, Batch]:
    """Every replica's image embeddings [N * B, d] and pairs, gathered with their gradients.

    The gathered pairs carry the rows' keys (``image_keys``, ``caption_keys``), not their
    indices: a streamed batch's row indices are its own, and two workers may hold captions of
    one image under different rows, or of different images under the same row.
    """
    pairs = Batch(distribute.gather(rows.caption_keys(batch.caption_index)),
                  distribute.gather(rows.image_keys(batch.image_index)),
                  distribute.gather_with_gradient(batch.text))
    return distribute.gather_with_gradient(image), pairs


def in_batch(image: tf.Tensor, text: tf.Tensor, image_index: tf.Tensor,
             caption_index: tf.Tensor) -> Negatives:
    """``Negatives`` of B pairs found among the pairs themselves (one [B, B] score matrix).

    Args:
        image: [B, d] training-mode image embeddings (row b pairs with text row b).
        text: [B, d] training-mode caption embeddings.
        image_index: [B] int64 training image row of each pair.
        caption_index: [B] int64 training caption row of each pair.

    Returns:
        The negatives, gathered from ``image`` and ``text`` (their gradients flow back there).

    """
    neg_image, neg_text = mining.in_batch_negatives(image, text, image_index)
    _check_found(neg_image, neg_text)
    image_row = tf.gather(image_index, neg_image)
    return Negatives(image, tf.gather(image, neg_image), tf.gather(text, neg_text),
                     tf.equal(image_row, tf.gather(image_index, neg_text)), image_row,
                     tf.gather(caption_index, neg_text))


class InBatch(tf.Module):
    """``in_batch``: each pair's hardest negatives among the other pairs of the global batch."""

    def __init__(self, config: TrainerConfig, rows: TrainingRows):
        super().__init__(name="in_batch")
        del config  # the batch is the whole search space
        self.rows = rows

    def __call__(self, batch: Batch) -> Negatives:
        """``in_batch`` of the global batch's images and captions."""
        image = self.rows.images(batch.image_index, training=True)
        image, pairs = global_batch(self.rows, image, batch)
        found = in_batch(image, pairs.text, pairs.image_index, pairs.caption_index)
        return found._replace(pairs=pairs)


def _global(rows: TrainingRows, image: tf.Tensor, image_row: tf.Tensor, caption_row: tf.Tensor,
            neg_image: tf.Tensor | None = None) -> Negatives:
    """``Negatives`` of globally mined training rows, re-encoded in training mode.

    ``neg_image``: the negatives' image embeddings when the caller has them already.
    """
    _check_found(image_row, caption_row)
    if neg_image is None:
        neg_image = rows.images(image_row, training=True)
    is_pair = tf.equal(image_row, tf.gather(rows.text_image_index, caption_row))
    return Negatives(image, neg_image, rows.captions(caption_row, training=True), is_pair,
                     image_row, caption_row)


class ExactGlobal(tf.Module):
    """``exact``: the hardest negatives among all training rows, scored afresh at every step.

    A dropout-free linear image tower at least d wide is scored through its products
    ``x @ W`` of every training image; the batch's and the negatives' image embeddings are then
    read from those products too (``towers.rows_of_products``: one gather, one normalization
    and one gradient matmul, no forward matmul of their own). Any other image tower runs.
    """

    def __init__(self, config: TrainerConfig, rows: TrainingRows):
        super().__init__(name="exact_global")
        self.rows = rows
        self.miner = global_mining.GlobalMiner(config, rows.image_modality(),
                                               rows.caption_modality())
        self.reused_head = (towers.reusable_training_head(rows.image_tower, rows.image_features)
                            if self.miner.has_image_products else None)

    def __call__(self, batch: Batch) -> Negatives:
        """Mines all training rows; re-encodes the negatives (or reads them from products)."""
        if self.reused_head is None:
            image = self.rows.images(batch.image_index, training=True)
            image_row, caption_row = self.miner.negative_index(
                image, batch.text, batch.image_index, batch.caption_index)
            return _global(self.rows, image, image_row, caption_row)
        products = self.miner.image_products()
        image_row, caption_row = self.miner.negative_index(
            None, batch.text, batch.image_index, batch.caption_index, products)
        both = tf.concat([batch.image_index, image_row], axis=0)
        images = towers.l2_normalize(towers.rows_of_products(*self.reused_head, products, both))
        image, neg_image = tf.split(images, 2)
        return _global(self.rows, image, image_row, caption_row, neg_image)


class Bank(tf.Module):
    """``bank``: the hardest negatives among stored embeddings of every training row.

    The whole training set is re-encoded (inference mode) every ``refresh_steps`` calls, before
    that call's search; the batch's rows are overwritten with their embeddings at every call.
    Across replicas, each keeps a whole bank of its own (``embedding_bank.EmbeddingBank``): each
    re-encodes every row with the same synchronized towers and writes every replica's batch
    rows, so all banks are the one process's bank, and the search is split among the replicas
    as exact mining's is (``global_mining.sharded_hardest_rows``).
    """

    def __init__(self, config: TrainerConfig, rows: TrainingRows):
        super().__init__(name="bank")
        self.rows, self.refresh_steps = rows, config.refresh_steps
        self.encode_batch = config.eval_batch_size
        self.bank = embedding_bank.EmbeddingBank(rows.text_image_index, rows.num_images,
                                         config.embedding_dim, config.mining_chunk_size)
        self.calls = distribute.replica_variable(tf.constant(0, tf.int64), "calls")

    def refresh(self) -> None:
        """Re-encodes the whole training set into the bank (batched, inside one graph)."""
        rows, batch = self.rows, self.encode_batch
        self.bank.image.assign(global_mining.encode_all(rows.images, rows.num_images, batch))
        self.bank.text.assign(global_mining.encode_all(rows.captions, rows.num_captions, batch))

    def __call__(self, batch: Batch) -> Negatives:
        """Refreshes the bank when due, writes the global batch's rows, mines it, re-encodes."""
        tf.cond(self.calls % self.refresh_steps == 0, self.refresh, lambda: None)
        self.calls.assign_add(1)
        image = self.rows.images(batch.image_index, training=True)
        queries, text = tf.stop_gradient(image), tf.stop_gradient(batch.text)
        self.bank.update(distribute.gather(batch.image_index), distribute.gather(queries),
                         distribute.gather(batch.caption_index), distribute.gather(text))
        image_row, caption_row = self._mine(queries, text, batch.image_index)
        return _global(self.rows, image, image_row, caption_row)

    def _mine(self, queries: tf.Tensor, text: tf.Tensor,
              image_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``EmbeddingBank.mine``; across replicas each scores its shard of the bank's rows."""
        context, bank = tf.distribute.get_replica_context(), self.bank
        if context is None or context.num_replicas_in_sync == 1:
            return bank.mine(queries, text, image_index)
        scoring = mining.BankScoring(bank.chunk_size)
        image_row = global_mining.sharded_hardest_rows(context, text, image_index, bank.image,
                                                       bank.image_ids, scoring)
        caption_row = global_mining.sharded_hardest_rows(context, queries, image_index, bank.text,
                                                         bank.text_image_ids, scoring)
        return image_row, caption_row


STRATEGIES = {"none": NoMining, "in_batch": InBatch, "exact": ExactGlobal, "bank": Bank}


def for_config(config: TrainerConfig, rows: TrainingRows) -> Strategy:
    """The strategy of ``config.mining_mode`` over the training rows ``rows``."""
    return STRATEGIES[config.mining_mode](config, rows)
