"""Hard-negative mining: in-batch and global (over the whole training set, as in the paper).

``hardest_negatives`` (docs/architecture.md): one batched matmul per bank chunk plus a masked
argmax, inside a ``tf.function``. In-batch mining is ``hardest_negatives`` with the batch as the
bank, computed from one [B, B] score matrix (``in_batch_negatives``); global mining passes the
whole training set: exact mode scores it as the current towers embed it at every step
(``trainer.negatives.global_mining``), bank mode keeps an ``embedding_bank.EmbeddingBank`` on device
between refreshes.

Memory bound. Scores are never materialized for the whole bank: each step of the chunk loop
holds one [B, chunk_size] float32 score matrix and one [B, chunk_size] bool mask (``5 * B *
chunk_size`` bytes) and the chunk's rows (``4 * chunk_size * d`` bytes, plus the matmul's packed
copy of them), independent of the corpus size. A ``tf.Variable`` bank is read one chunk at a time
(``tf.gather`` of the chunk's rows), never copied whole, with at most two chunks in flight:
``benchmarks/bench_mining_scaling.py`` measures the memory above the bank for B = 128,
d = 1024, chunk 2048, from 10k to 1M captions (bound: 34 MiB; docs/perf.md).

Chunk size. 2048 rows keep a chunk's [B, chunk] scores in cache between the matmul and the
argmax, so exact global mining on Flickr8k (B = 512) steps faster than with 8192 and bank
mining of B = 128 no slower, with a quarter of the memory (docs/perf.md).

Linear heads: a bank of a linear head's inputs is scored through the head
(``trainer.negatives.head_norms``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import tensorflow as tf

from trainer.negatives import head_norms, primitive_matmul

DEFAULT_CHUNK_SIZE = 2048
NO_NEGATIVE = -1  # index returned when no bank row has a different image id


def _chunk_rows(bank, start: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Rows [start, start + size) of a bank tensor, or of a variable without reading it whole."""
    if isinstance(bank, tf.Variable):
        return tf.gather(bank, tf.range(start, start + size))
    return tf.slice(bank, tf.stack([start, 0]), tf.stack([size, -1]))


def _num_rows(bank) -> tf.Tensor:
    """N of a bank [N, p] as int64, without reading a variable's value (which would copy it)."""
    if bank.shape[0] is not None:
        return tf.constant(bank.shape[0], tf.int64)
    if isinstance(bank, tf.Variable):
        return tf.raw_ops.VariableShape(input=bank.handle, out_type=tf.int64)[0]
    return tf.shape(bank, out_type=tf.int64)[0]


def _mask_same(scores: tf.Tensor, query_ids: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """-inf where a chunk row [B, C] shares the query's id (compares every id pair)."""
    same = tf.equal(query_ids[:, None], ids[None, :])
    return tf.where(same, tf.constant(-float("inf"), tf.float32), scores)


def _mask_rows(scores: tf.Tensor, local: tf.Tensor) -> tf.Tensor:
    """-inf at chunk columns ``local`` [k, P] of scores [k, C] (columns outside [0, C) ignored)."""
    at = tf.where((local >= 0) & (local < tf.shape(scores, out_type=tf.int64)[1]))  # [M, 2]
    at = tf.stack([at[:, 0], tf.gather_nd(local, at)], axis=1)
    return tf.tensor_scatter_nd_update(scores, at, tf.fill([tf.shape(at)[0]], -float("inf")))


def _chunk_best(scores: tf.Tensor, query_ids: tf.Tensor, ids: tf.Tensor, start: tf.Tensor,
                exclude: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
    """Per query, the chunk column [B] of highest score among allowed rows, and that score [B].

    With ``exclude`` (rows of the query's own id), the unmasked argmax stands unless it is an
    excluded row; only those queries (typically few) are masked and searched again, so the
    [B, C] scores are never copied whole.
    """
    if exclude is None:
        scores = _mask_same(scores, query_ids, ids)
        index = tf.argmax(scores, axis=1, output_type=tf.int64)
        return index, tf.gather(scores, index, batch_dims=1)
    index = tf.argmax(scores, axis=1, output_type=tf.int64)
    best = tf.gather(scores, index, batch_dims=1)
    local = exclude - start  # [B, P] chunk columns of each query's excluded rows
    again = tf.where(tf.reduce_any(tf.equal(local, index[:, None]), axis=1))  # [k, 1]
    masked = _mask_rows(tf.gather_nd(scores, again), tf.gather_nd(local, again))
    index = tf.tensor_scatter_nd_update(index, again,
                                        tf.argmax(masked, axis=1, output_type=tf.int64))
    return index, tf.tensor_scatter_nd_update(best, again, tf.reduce_max(masked, axis=1))


class _Search(NamedTuple):
    """``BankScoring`` as tensors or None, which a ``tf.function`` traces (``tf.nest``)."""

    chunk_size: int
    factor: tuple[tf.Tensor, tf.Tensor] | None  # head_norms.factor_blocks: <q, x> / |x F|
    tail: tf.Tensor | None  # with factor: head_tail(bank) [N, p - p // 2]
    exclude: tf.Tensor | None  # [B, P] int64 rows of each query's id, -1 padded; None: ids
    normalize: bool  # without factor: scores divided by the rows' norms
    first: tf.Tensor | None  # int64 first bank row searched (None: 0)
    stop: tf.Tensor | None  # int64 end of the searched rows (None: N), in bank numbering


class Found(NamedTuple):
    """What a bank search found for each query."""

    rows: tf.Tensor  # [B] int64 (ties to the lowest row; NO_NEGATIVE when none)
    scores: tf.Tensor  # [B] float32, as the search computed them (-inf when none)


def _chunk_scores(queries: tf.Tensor, bank, search: _Search, start: tf.Tensor,
                  size: tf.Tensor) -> tf.Tensor:
    """Scores [B, size] of the queries against bank rows [start, start + size)."""
    rows = _chunk_rows(bank, start, size)
    if search.factor is None:
        scores = primitive_matmul.matmul(queries, rows, transpose_b=True)  # [B, chunk]
        if search.normalize:  # d-wide rows: scale the (usually smaller) scores
            scores *= head_norms.inverse_norms(rows)[None, :]
        return scores
    # Narrow head inputs: scale the [chunk, p] rows.
    rows *= head_norms.inverse_norms(rows, search.factor,
                                     _chunk_rows(search.tail, start, size))[:, None]
    # At this inner dimension (p = 384) sgemm is faster than the matmul primitive.
    return tf.matmul(queries, rows, transpose_b=True)


def _masked_argmax(queries: tf.Tensor, query_ids: tf.Tensor, bank, bank_ids: tf.Tensor,
                   search: _Search) -> Found:
    """For each query, the bank row of highest score whose id differs from the query's.

    Args:
        queries: [B, p] float32.
        query_ids: [B] ids (any comparable dtype).
        bank: [N, p] float32 tensor or ``tf.Variable``.
        bank_ids: [N] ids, same dtype as ``query_ids``.
        search: how the bank is scored and which rows are searched.

    Returns:
        The ``Found`` rows (ties go to the lowest index) and their scores.

    """
    n = _num_rows(bank) if search.stop is None else tf.cast(search.stop, tf.int64)
    batch = tf.shape(queries)[0]
    best_score = tf.fill([batch], tf.constant(-float("inf"), tf.float32))
    best_index = tf.fill([batch], tf.constant(NO_NEGATIVE, tf.int64))

    def body(start, best_score, best_index):
        size = tf.minimum(tf.constant(search.chunk_size, tf.int64), n - start)
        scores = _chunk_scores(queries, bank, search, start, size)
        chunk_index, chunk_best = _chunk_best(scores, query_ids,
                                              tf.slice(bank_ids, [start], [size]), start,
                                              search.exclude)
        better = chunk_best > best_score
        return (start + size, tf.where(better, chunk_best, best_score),
                tf.where(better, chunk_index + start, best_index))

    first = tf.constant(0, tf.int64) if search.first is None else tf.cast(search.first, tf.int64)
    _, best_score, best_index = tf.while_loop(
        lambda start, *_: start < n, body, (first, best_score, best_index),
        parallel_iterations=2,  # at most two chunks in flight: the memory bound holds
    )
    return Found(best_index, best_score)


# Tensor banks run in one shared graph. A variable bank must not be a tf.function argument: a
# trace generalized over shapes keeps reading the variable it was traced with, so it runs in the
# caller's graph instead (``EmbeddingBank.mine`` is a tf.function of its own bank).
_masked_argmax_graph = tf.function(_masked_argmax, reduce_retracing=True, autograph=False)


def _as_ids(ids) -> tf.Tensor:
    ids = tf.convert_to_tensor(ids)
    return ids if ids.dtype == tf.string else tf.cast(ids, tf.int64)


def _as_float(x):
    """float32 tensor; a float32 ``tf.Variable`` stays a variable (read by chunks)."""
    if isinstance(x, tf.Variable) and x.dtype == tf.float32:
        return x
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


@dataclasses.dataclass(frozen=True)
class BankScoring:
    """How ``best_rows`` scores a bank and which of its rows it searches.

    Attributes:
        chunk_size: bank rows scored per matmul (memory bound, see the module docstring).
        head_kernel: optional [p, d] kernel W; the bank then holds a linear head's [N, p]
            inputs and row n is scored as ``normalize(bank[n] @ W)``.
        bank_tail: with ``head_kernel``, optionally ``head_tail(bank)``, kept by a caller that
            mines the same inputs at every step (else sliced at each search, a copy).
        normalize: the bank rows are unnormalized embeddings (e.g. ``x @ W`` of a linear
            head), scored as if L2-normalized (scores divided by the row norms).
        exclude_rows: optional [B, P] int: all bank rows whose id is query b's, padded with -1.
            The caller's guarantee replaces the [B, chunk] id comparison by P writes per query.
        row_range: optional ``(first, stop)`` int64: search bank rows [first, stop) only (a
            replica's shard, read in place), returned as rows of the whole bank.

    """

    chunk_size: int = DEFAULT_CHUNK_SIZE
    head_kernel: Any = None
    bank_tail: Any = None
    normalize: bool = False
    exclude_rows: Any = None
    row_range: tuple[Any, Any] | None = None

    def __post_init__(self):
        """Raises ValueError: ``chunk_size`` < 1."""
        if self.chunk_size < 1:
            raise ValueError(f"BankScoring.chunk_size must be >= 1, got {self.chunk_size}")

    def prepare(self, queries: tf.Tensor, bank) -> tuple[tf.Tensor, _Search]:
        """The queries as scored against ``bank`` (through the head, if any) and the search."""
        factor, tail = None, None
        if self.head_kernel is not None:
            kernel = tf.stop_gradient(_as_float(tf.convert_to_tensor(self.head_kernel)))
            queries = tf.matmul(queries, kernel, transpose_b=True)  # [B, p]
            tail = head_norms.head_tail(bank) if self.bank_tail is None else _as_float(
                self.bank_tail)
            factor = head_norms.factor_blocks(head_norms.gram_factor(kernel), tail.shape[1])
        exclude = None if self.exclude_rows is None else tf.cast(self.exclude_rows, tf.int64)
        first, stop = (None, None) if self.row_range is None else self.row_range
        return queries, _Search(self.chunk_size, factor, tail, exclude, self.normalize, first,
                                stop)


def best_rows(queries, query_ids, bank, bank_ids,
              scoring: BankScoring = BankScoring()) -> Found:
    """For each query, the bank row of highest score whose id differs from the query's id.

    Args:
        queries: [B, d] L2-normalized query embeddings.
        query_ids: [B] ids (string or integer).
        bank: [N, d] candidate embeddings (tensor, array or ``tf.Variable``), or with
            ``scoring.head_kernel`` the [N, p] inputs of a linear head (module docstring).
        bank_ids: [N] their ids.
        scoring: how the bank is scored and which rows are searched.

    Returns:
        ``Found``: [B] int64 bank rows (ties to the lowest row; ``NO_NEGATIVE`` where every row
        shares the query's id) and their scores, as the search computed them (replicas that
        search shards of a bank compare these).

    """
    bank = _as_float(bank)
    queries, search = scoring.prepare(_as_float(queries), bank)
    argmax = _masked_argmax if isinstance(bank, tf.Variable) else _masked_argmax_graph
    return argmax(tf.stop_gradient(queries), _as_ids(query_ids), bank, _as_ids(bank_ids), search)


def hardest_rows(queries, query_ids, bank, bank_ids,
                 scoring: BankScoring = BankScoring()) -> tf.Tensor:
    """The rows [B] int64 of ``best_rows`` (same arguments), without their scores."""
    return best_rows(queries, query_ids, bank, bank_ids, scoring).rows


def hardest_negatives(  # noqa: PLR0913 - external contract (docs/architecture.md)
    query_image,
    query_text,
    query_image_ids,
    bank_image,
    bank_image_ids,
    bank_text,
    bank_text_image_ids,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Hardest negatives of a batch of pairs in a bank (docs/architecture.md contract).

    Args:
        query_image: [B, d] L2-normalized image embeddings of the batch pairs.
        query_text: [B, d] L2-normalized caption embeddings (row b pairs with image row b).
        query_image_ids: [B] image id of pair b (string or integer).
        bank_image: [N_i, d] candidate negative images.
        bank_image_ids: [N_i] their image ids.
        bank_text: [N_c, d] candidate negative captions.
        bank_text_image_ids: [N_c] the image id of each candidate caption.
        chunk_size: bank rows scored per matmul (memory bound, see the module docstring).

    Returns:
        ``(neg_image_index [B], neg_text_index [B])`` int64: for caption b the bank image of
        highest s(c_b, .) whose id differs from ``query_image_ids[b]``; for image b the bank
        caption of highest s(i_b, .) whose image id differs. ``NO_NEGATIVE`` (-1) where every
        bank row shares the query's image id.

    """
    scoring = BankScoring(chunk_size)
    neg_image = hardest_rows(query_text, query_image_ids, bank_image, bank_image_ids, scoring)
    neg_text = hardest_rows(query_image, query_image_ids, bank_text, bank_text_image_ids,
                            scoring)
    return neg_image, neg_text


def in_batch_negatives(image, text, image_ids) -> tuple[tf.Tensor, tf.Tensor]:
    """``hardest_negatives`` of a batch with the batch itself as the bank, from one matmul.

    In the batch, caption -> image scores are the transpose of image -> caption scores: one
    [B, B] matrix s(i_r, c_k) and one same-image mask serve both searches (column and row
    argmax), instead of two matmuls and two masks.

    Args:
        image: [B, d] L2-normalized image embeddings (row b pairs with text row b).
        text: [B, d] L2-normalized caption embeddings.
        image_ids: [B] image id of each pair.

    Returns:
        ``(neg_image_index [B], neg_text_index [B])`` batch rows, as ``hardest_negatives`` with
        ``bank_image = image`` and ``bank_text = text`` (ties to the lowest row,
        ``NO_NEGATIVE`` where every pair shares the image).

    """
    scores = primitive_matmul.matmul(tf.stop_gradient(_as_float(image)),
                                     tf.stop_gradient(_as_float(text)), transpose_b=True)
    ids = _as_ids(image_ids)
    masked = _mask_same(scores, ids, ids)  # [B, B]: -inf where r and k share the image
    rows = tf.range(tf.shape(masked, out_type=tf.int64)[0])
    neg_text = tf.argmax(masked, axis=1, output_type=tf.int64)
    neg_image = tf.argmax(masked, axis=0, output_type=tf.int64)
    found_text = tf.gather(masked, neg_text, batch_dims=1) > -float("inf")
    found_image = tf.gather_nd(masked, tf.stack([neg_image, rows], axis=1)) > -float("inf")
    return (tf.where(found_image, neg_image, NO_NEGATIVE),
            tf.where(found_text, neg_text, NO_NEGATIVE))
