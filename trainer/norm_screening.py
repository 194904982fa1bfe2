"""Exact mining through a narrow linear head, with the row norms re-computed only when needed.

Exact global mining scores a linear head's rows as ``<q W^T, x_n> / |x_n W|`` (``trainer.mining``).
The scores change with W at every step, but the norms |x_n W| change slowly, and by a bounded
amount: ``| |x_n W| - |x_n W_ref| | <= |x_n| sigma(W - W_ref)``, sigma the largest singular value.
``ScreenedHead`` keeps every row's inverse norm under a reference kernel W_ref and, at each step:

1. bounds the relative drift of every norm since W_ref, ``beta = sigma(W - W_ref) * max_n |x_n| /
   |x_n W_ref|`` (``spectral_norm_bound``: ~3 ms for 384 x 1024), and re-takes W_ref and the
   norms (the norm pass that unscreened mining makes at every step) when beta exceeds
   ``max_drift``;
2. scores every row with the reference norms (the same score matmul as unscreened mining, no
   norm matmul) and keeps the rows whose score, their norm anywhere within a factor
   ``1 +- beta`` of the reference, could still beat some query's best lower bound
   (``candidate_rows``);
3. runs the exact search (``mining.hardest_head_rows``) on those rows only.

The row that exact mining picks over all rows, ties included, is always a candidate, so the
negatives are those of ``mining.hardest_rows`` with the current kernel (tests compare them).
On Flickr8k (30,000 captions, 384 -> 1024, Adam 2e-4) the norms drift ~0.3 % per step after the
first; with the default limit of 2 % they are re-computed every ~6 steps, and a step keeps
~1,500-3,000 candidate captions.
"""

from __future__ import annotations

import tensorflow as tf

from trainer import mining, primitive_matmul

# Relative slack added to the drift bound: float32 rounding of norms and scores is ~1e-6.
ROUNDING_SLACK = 1e-4
# Default drift bound that triggers a refresh of the reference norms.
DEFAULT_MAX_DRIFT = 0.02


def spectral_norm_bound(matrix: tf.Tensor, squarings: int = 5) -> tf.Tensor:
    """An upper bound on the largest singular value of ``matrix`` [p, d] (p <= d is cheaper).

    ``lambda_max(M) <= trace(M^(2^k))^(1 / 2^k)`` for M = A A^T (positive semi-definite), computed
    by k squarings of M divided by its trace (so nothing overflows): over-estimates sigma by a
    factor of at most ``rank^(1 / 2^(k+1))`` (1.10 for rank 384 and k = 5). 0 for a zero matrix.
    """
    gram = tf.matmul(matrix, matrix, transpose_b=True)
    trace = tf.linalg.trace(gram)
    safe_trace = tf.maximum(trace, 1e-30)
    power, log_bound = gram / safe_trace, tf.math.log(safe_trace)
    for i in range(1, squarings + 1):
        power = tf.matmul(power, power)
        power_trace = tf.maximum(tf.linalg.trace(power), 1e-30)
        log_bound += tf.math.log(power_trace) / 2.0**i
        power /= power_trace
    return tf.where(trace > 0, tf.exp(log_bound / 2.0) * (1.0 + ROUNDING_SLACK), 0.0)


def _threshold(best: tf.Tensor, beta: tf.Tensor) -> tf.Tensor:
    """Lowest stale score [B] that can still beat ``best``'s lower bound, norms within beta."""
    low = tf.where(best >= 0, best / (1.0 + beta), best / (1.0 - beta))
    return tf.where(low >= 0, low * (1.0 - beta), low * (1.0 + beta))


def candidate_rows(input_queries: tf.Tensor, query_ids: tf.Tensor, inputs: tf.Tensor,
                   inverse: tf.Tensor, ids: tf.Tensor, beta: tf.Tensor, chunk_size: int,
                   exclude_rows: tf.Tensor | None = None) -> tf.Tensor:
    """Rows [U] (ascending) that may be some query's hardest row when norms drift by <= beta.

    Args:
        input_queries: [B, p] queries in the head's input space.
        query_ids: [B] int64 ids.
        inputs: [N, p] the head's inputs.
        inverse: [N] their inverse reference norms 1 / |x_n W_ref|.
        ids: [N] int64 row ids.
        beta: scalar in [0, 1): bound on every row's relative norm drift.
        chunk_size: rows scored per matmul.
        exclude_rows: optional [B, P] rows of each query's own id (else ids are compared).

    Returns:
        [U] int64: every row whose upper bound reaches the running best lower bound of some
        query (a superset of the final test, as the running best only grows). Only the queries
        whose chunk best reaches their threshold (usually few) are compared row by row.

    """
    n = mining.num_rows(inputs)
    best = tf.fill([tf.shape(input_queries)[0]], tf.constant(-float("inf")))
    parts = tf.TensorArray(tf.int64, size=0, dynamic_size=True, infer_shape=False)

    def body(i, start, best, parts):
        size = tf.minimum(tf.constant(chunk_size, tf.int64), n - start)
        # The [B, chunk] scores are scaled while still in cache (the rows would be read again).
        scores = primitive_matmul.matmul(input_queries, mining.chunk_rows(inputs, start, size),
                                         transpose_b=True) * tf.slice(inverse, [start], [size])
        _, chunk_score = mining.chunk_best(scores, query_ids, tf.slice(ids, [start], [size]),
                                           start, exclude_rows)
        best = tf.maximum(best, chunk_score)
        threshold = _threshold(best, beta)
        reaching = tf.where(chunk_score >= threshold)[:, 0]  # queries with a candidate here
        hit = tf.reduce_any(tf.gather(scores, reaching)
                            >= tf.gather(threshold, reaching)[:, None], axis=0)
        return i + 1, start + size, best, parts.write(i, tf.where(hit)[:, 0] + start)

    *_, parts = tf.while_loop(lambda i, start, *_: start < n, body,
                              (tf.constant(0), tf.constant(0, tf.int64), best, parts),
                              parallel_iterations=2)
    return parts.concat()


class ScreenedHead(tf.Module):
    """Exact hardest rows of a narrow linear head's inputs, norms screened (module docstring)."""

    def __init__(self, inputs: tf.Tensor, kernel: tf.Variable, ids: tf.Tensor, chunk_size: int,
                 max_drift: float | None = None):
        """Keeps the inputs and creates the reference state (taken at the first search).

        Args:
            inputs: [N, p] the head's inputs.
            kernel: [p, d] the head's kernel W (the variable the optimizer updates).
            ids: [N] int row ids (a query never gets a row of its own id).
            chunk_size: rows scored per matmul.
            max_drift: re-take the reference when the norms' relative drift bound exceeds it
                (default ``DEFAULT_MAX_DRIFT``).

        Raises:
            ValueError: ``max_drift`` outside (0, 0.5].

        """
        super().__init__(name="screened_head")
        max_drift = DEFAULT_MAX_DRIFT if max_drift is None else max_drift
        if not 0 < max_drift <= 0.5:
            raise ValueError(f"max_drift must be in (0, 0.5], got {max_drift}")
        self.inputs, self.kernel, self.ids = inputs, kernel, mining.as_ids(ids)
        self.chunk_size, self.max_drift = chunk_size, max_drift
        self.inverse = tf.Variable(tf.zeros(inputs.shape[:1]), trainable=False, name="inverse")
        self.reference = tf.Variable(tf.zeros(kernel.shape), trainable=False, name="reference")
        self.spread = tf.Variable(float("inf"), trainable=False, name="spread")
        self.refreshes = tf.Variable(0, dtype=tf.int64, trainable=False, name="refreshes")
        self.candidates = tf.Variable(0, dtype=tf.int64, trainable=False, name="candidates")

    def drift(self) -> tf.Tensor:
        """Bound on every row's relative norm change since the reference (inf before the first)."""
        sigma = spectral_norm_bound(tf.stop_gradient(self.kernel - self.reference))
        return tf.where(tf.math.is_inf(self.spread), self.spread, self.spread * sigma)

    def _refresh(self, factor: tf.Tensor) -> None:
        inverse = mining.inverse_norms(self.inputs, factor)
        self.inverse.assign(inverse)
        self.reference.assign(self.kernel)
        self.spread.assign(tf.reduce_max(tf.norm(self.inputs, axis=1) * inverse))
        self.refreshes.assign_add(1)

    def hardest(self, queries: tf.Tensor, query_ids: tf.Tensor,
                exclude_rows: tf.Tensor | None = None) -> tf.Tensor:
        """``mining.hardest_rows(queries, query_ids, inputs, ids, head_kernel=W, ...)``.

        Args:
            queries: [B, d] L2-normalized queries.
            query_ids: [B] ids.
            exclude_rows: optional [B, P] rows of each query's own id, -1 padded.

        Returns:
            [B] int64 rows (``mining.NO_NEGATIVE`` where none).

        """
        kernel = tf.stop_gradient(tf.convert_to_tensor(self.kernel))
        factor = mining.gram_factor(kernel)
        drift = self.drift()
        refresh = drift > self.max_drift
        tf.cond(refresh, lambda: self._refresh(factor), lambda: None)
        beta = tf.where(refresh, 0.0, drift) + ROUNDING_SLACK
        input_queries = tf.matmul(tf.stop_gradient(queries), kernel, transpose_b=True)
        query_ids = mining.as_ids(query_ids)
        exclude = None if exclude_rows is None else tf.cast(exclude_rows, tf.int64)
        rows = candidate_rows(input_queries, query_ids, self.inputs, self.inverse.read_value(),
                              self.ids, beta, self.chunk_size, exclude)
        self.candidates.assign(tf.size(rows, out_type=tf.int64))
        found = mining.hardest_head_rows(input_queries, query_ids, tf.gather(self.inputs, rows),
                                         tf.gather(self.ids, rows), factor, self.chunk_size)
        return tf.where(found >= 0, tf.gather(rows, tf.maximum(found, 0)), found)
