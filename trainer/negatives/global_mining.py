"""Exact global hard-negative mining over the whole training set (the ``exact`` mining mode).

At every step, every training image and caption is scored as the current towers embed them,
with no stored bank: a linear tower narrower than d is scored through its head
(``trainer.mining``), a linear tower at least d wide through its products ``x @ W``
(``image_products``, which ``trainer.negatives.strategies.ExactGlobal`` also reuses as its image
outputs),
any other tower is encoded in inference mode. ``encode_all`` also fills the ``bank`` mode's
``EmbeddingBank``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer import mining
from trainer.config import TrainerConfig
from trainer.model import towers
from trainer.negatives import head_norms
from trainer.train import distribute


@dataclasses.dataclass(frozen=True)
class Modality:
    """One side of the training set (its images, or its captions) as global mining sees it.

    Attributes:
        tower: the side's tower.
        inputs: the tower's inputs for every row ([N, D] tensor or dict of them).
        encode: row indices [n] -> [n, d] embeddings in inference mode.
        image_index: [N] int64 training image row of each row.
        size: N.
        head_tail: for a linear head narrower than d, ``head_norms.head_tail`` of its inputs, kept
            for the norms of every exact-mode step (``GlobalMiner`` sets it), else None.

    """

    tower: keras.Model
    inputs: object
    encode: Callable[[tf.Tensor], tf.Tensor]
    image_index: tf.Tensor
    size: int
    head_tail: tf.Tensor | None = None


def encode_all(encode: Callable[[tf.Tensor], tf.Tensor], n: int, batch: int) -> tf.Tensor:
    """``encode(rows)`` of all n rows [n, d], ``batch`` rows at a time (bounds activations)."""
    starts = tf.range(0, n, batch, dtype=tf.int64)
    parts = tf.TensorArray(tf.float32, size=tf.size(starts), infer_shape=False)

    def body(i, parts):
        index = tf.range(starts[i], tf.minimum(starts[i] + batch, n))
        return i + 1, parts.write(i, encode(index))

    _, parts = tf.while_loop(lambda i, _: i < tf.size(starts), body, (tf.constant(0), parts))
    return parts.concat()


def rows_by_group(group: np.ndarray, num_groups: int) -> np.ndarray:
    """[num_groups, max group size] int64: the rows of each group (``group[row]``), -1 padded."""
    group = np.asarray(group, np.int64)
    sizes = np.bincount(group, minlength=num_groups)
    table = np.full((num_groups, max(int(sizes.max(initial=0)), 1)), -1, np.int64)
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    table[group[order], np.arange(len(group)) - starts[group[order]]] = order
    return table


class GlobalMiner(tf.Module):
    """Hardest negative image and caption rows of a batch among all training rows, as now embedded.

    Narrow linear heads are scored in their input space at every step, so their inputs' tail
    columns (``Modality.head_tail``) are sliced once, here.
    """

    def __init__(self, config: TrainerConfig, images: Modality, captions: Modality):
        super().__init__(name="global_miner")
        self.config = config
        self.images, self.captions = _with_head_tail(images), _with_head_tail(captions)
        self.captions_of_image = tf.constant(rows_by_group(captions.image_index, images.size))
        self.has_image_products = _wide_head(images) is not None

    def image_products(self) -> tf.Tensor | None:
        """``x @ W`` [N_i, d] of every training image, as exact mode scores them, else None.

        A linear image head at least as wide as d is scored through these products (their
        scores divided by the row norms); other image towers have none.
        """
        return _products(self.images) if self.has_image_products else None

    def _hardest_now(self, queries: tf.Tensor, query_image_index: tf.Tensor, side: Modality,
                     exclude: tf.Tensor, products: tf.Tensor | None = None) -> tf.Tensor:
        """Hardest rows of ``side`` as its tower embeds them now; ``exclude`` [B, P]: own rows.

        ``products``: the side's ``x @ W`` when the caller computed them already.
        """
        products = _products(side) if products is None else products
        scoring = mining.BankScoring(self.config.mining_chunk_size, exclude_rows=exclude)
        if products is not None:
            return self._search(queries, query_image_index, products, side.image_index,
                                dataclasses.replace(scoring, normalize=True))
        head = towers.linear_head(side.tower, side.inputs)
        if head is not None:  # narrower inputs: score in the input space
            return self._search(queries, query_image_index, head[0], side.image_index,
                                dataclasses.replace(scoring, head_kernel=head[1],
                                                    bank_tail=side.head_tail))
        bank = encode_all(side.encode, side.size, max(self.config.mining_chunk_size, 1024))
        return self._search(queries, query_image_index, tf.stop_gradient(bank), side.image_index,
                            scoring)

    @staticmethod
    def _search(queries: tf.Tensor, query_image_index: tf.Tensor, bank: tf.Tensor,
                bank_ids: tf.Tensor, scoring: mining.BankScoring) -> tf.Tensor:
        """``mining.hardest_rows`` of ``bank``, its rows split among the replicas.

        With N replicas, every replica searches its shard of the rows for every replica's
        queries, and each query keeps the best (score, row) over the shards, ties to the lowest
        row: the rows one process finds, at 1/N of the scoring per replica.
        """
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return mining.hardest_rows(queries, query_image_index, bank, bank_ids, scoring)
        return sharded_hardest_rows(context, queries, query_image_index, bank, bank_ids, scoring)

    def negative_index(self, image: tf.Tensor, text: tf.Tensor, image_index: tf.Tensor,
                       caption_index: tf.Tensor, image_products: tf.Tensor | None = None
                       ) -> tuple[tf.Tensor, tf.Tensor]:
        """Training rows of the hardest negative image [B] and caption [B] of a batch.

        Args:
            image: [B, d] image embeddings of the batch pairs (None with ``image_products``).
            text: [B, d] caption embeddings of the batch pairs.
            image_index: [B] training image row of each pair.
            caption_index: [B] training caption row of each pair.
            image_products: ``image_products()`` of this step, when the caller has them; the
                caption search then takes its image queries from them (normalized rows, as a
                dropout-free tower embeds them), once per distinct batch image.

        """
        text = tf.stop_gradient(text)
        neg_image = self._hardest_now(text, image_index, self.images, image_index[:, None],
                                      image_products)
        if image_products is None:
            return neg_image, self._hardest_now(tf.stop_gradient(image), image_index,
                                                self.captions,
                                                tf.gather(self.captions_of_image, image_index))
        distinct, position = tf.unique(image_index)
        queries = towers.l2_normalize(tf.gather(image_products, distinct))
        neg_text = self._hardest_now(queries, distinct, self.captions,
                                     tf.gather(self.captions_of_image, distinct))
        return neg_image, tf.gather(neg_text, position)

    @tf.function(autograph=False)
    def mine_captions(self, caption_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``negative_index`` of the training captions ``caption_index`` [B], without a step.

        The batch is embedded in inference mode; where the image products exist, the image
        queries are read from them, as the training step does (benchmarks compare these
        negatives with the paper's loop and time this search alone).
        """
        image_index = tf.gather(self.captions.image_index, caption_index)
        text = self.captions.encode(caption_index)
        products = self.image_products()
        image = self.images.encode(image_index) if products is None else None
        return self.negative_index(image, text, image_index, caption_index, products)


def _shard(context: tf.distribute.ReplicaContext, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``(start, stop)`` int64 of this replica's consecutive share of ``size`` rows."""
    replicas = context.num_replicas_in_sync
    share = -(-size // replicas)
    start = tf.cast(context.replica_id_in_sync_group, tf.int64) * share
    return tf.minimum(start, size), tf.minimum(start + share, size)


def sharded_hardest_rows(context: tf.distribute.ReplicaContext, queries: tf.Tensor,
                         query_ids: tf.Tensor, bank, bank_ids: tf.Tensor,
                         scoring: mining.BankScoring) -> tf.Tensor:
    """``mining.hardest_rows`` over all replicas' queries, each replica scoring its bank shard.

    Args:
        context: the replica context (every replica calls this in the same step).
        queries: [b, p] this replica's queries (b may differ among replicas).
        query_ids: [b] their ids.
        bank: [N, p] every row, tensor or variable (each replica reads its shard in place).
        bank_ids: [N] the rows' ids.
        scoring: how every replica scores the bank (the same on every replica), its
            ``exclude_rows`` [b, P] for this replica's queries; its ``row_range`` is replaced
            by this replica's shard.

    Returns:
        [b] int64 rows of ``bank`` for this replica's queries.

    """
    sizes = distribute.all_gather(context, tf.shape(queries, out_type=tf.int64)[:1])  # [N]
    replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
    first = tf.reduce_sum(sizes[:replica])
    exclude = scoring.exclude_rows
    scoring = dataclasses.replace(
        scoring, row_range=_shard(context, int(bank_ids.shape[0])),
        exclude_rows=None if exclude is None else distribute.all_gather(context, exclude))
    rows, scores = mining.best_rows(
        distribute.all_gather(context, tf.stop_gradient(queries)),
        distribute.all_gather(context, query_ids), bank, bank_ids, scoring)
    all_rows = distribute.all_gather(context, rows[None])  # [replicas, total queries]
    best = tf.argmax(distribute.all_gather(context, scores[None]), axis=0, output_type=tf.int64)
    found = tf.gather(tf.transpose(all_rows), best, batch_dims=1)
    return found[first:first + sizes[replica]]


def _with_head_tail(side: Modality) -> Modality:
    """``side`` with its ``head_tail`` when its linear head is narrower than d."""
    head = towers.linear_head(side.tower, side.inputs)
    if head is None or _wide_head(side) is not None:
        return side
    return dataclasses.replace(side, head_tail=head_norms.head_tail(head[0]))


def _wide_head(side: Modality) -> tuple[tf.Tensor, tf.Variable] | None:
    """The side's ``towers.linear_head`` if its inputs are at least d wide, else None."""
    head = towers.linear_head(side.tower, side.inputs)
    return None if head is None or head[1].shape[0] < head[1].shape[1] else head


def _products(side: Modality) -> tf.Tensor | None:
    """``x @ W`` [N, d] (no gradient) of the side's ``_wide_head``, else None."""
    head = _wide_head(side)
    return None if head is None else tf.stop_gradient(tf.matmul(*head))
