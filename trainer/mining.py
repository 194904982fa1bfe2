"""Hard-negative mining: in-batch and global (over the whole training set, as in the paper).

``hardest_negatives`` (docs/architecture.md): one batched matmul per bank chunk plus a masked
argmax, inside a ``tf.function``. In-batch mining is ``hardest_negatives`` with the batch as the
bank, computed from one [B, B] score matrix (``in_batch_negatives``); global mining passes the
whole training set: exact mode scores it as the current towers embed it at every step
(``trainer.global_mining``), bank mode keeps an ``EmbeddingBank`` on device between refreshes.

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

Linear heads. When a bank row's embedding is ``normalize(x_n @ W)`` with inputs x_n [p] and a
head kernel W [p, d] with p < d (a linear tower over precomputed features), the bank can hold the
inputs instead of the embeddings: ``<q, normalize(x_n W)> = <q W^T, x_n> / |x_n F|`` with
F F^T = G = W W^T [p, p] (F: G's lower-triangular Cholesky factor, so that a row's norm is one
``reduce_euclidean_norm`` pass instead of a product and a sum; ``gram_factor``). Scoring then
costs p/d of the embedding matmul and nothing needs re-encoding, with the same negatives (up to
float32 rounding). As F is lower triangular, ``|x F|^2 = |x F[:, :s]|^2 + |x[:, s:] F[s:, s:]|^2``
for s = p // 2: the norms take 3/4 of the multiply-adds of ``x F`` (``head_tail``).
"""

from __future__ import annotations

import tensorflow as tf

from trainer import distribute, primitive_matmul

DEFAULT_CHUNK_SIZE = 2048
NO_NEGATIVE = -1  # index returned when no bank row has a different image id
_NORM_EPSILON = 1e-12  # the epsilon of trainer.towers.l2_normalize


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


def gram_factor(kernel: tf.Tensor) -> tf.Tensor:
    """Lower-triangular F [p, p] with F F^T = W W^T for a kernel W [p, d]: |x W| = |x F|.

    The Cholesky factor when W W^T is positive definite (the rule for p < d). For a singular
    W W^T (a rank-deficient kernel, e.g. all zeros), where Cholesky returns NaN, the
    eigendecomposition's R = V sqrt(max(lambda, 0)) made triangular: with R^T = Q U (QR),
    F = U^T is lower triangular and F F^T = U^T U = R R^T.
    """
    gram = tf.matmul(kernel, kernel, transpose_b=True)
    cholesky = tf.linalg.cholesky(gram)

    def from_eigenvectors() -> tf.Tensor:
        values, vectors = tf.linalg.eigh(gram)
        root = vectors * tf.sqrt(tf.maximum(values, 0.0))[None, :]
        return tf.transpose(tf.linalg.qr(tf.transpose(root))[1])

    return tf.cond(tf.reduce_all(tf.math.is_finite(cholesky)), lambda: cholesky,
                   from_eigenvectors)


def head_tail(inputs: tf.Tensor) -> tf.Tensor:
    """``inputs[:, p // 2:]`` [N, p - p // 2] as a tensor of its own: the ``tail`` of the norms.

    A caller that scores the same head inputs at every step keeps it (a column slice is a copy).
    """
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    return inputs[:, inputs.shape[1] // 2:]


def _inverse_norms(rows: tf.Tensor, factor: tuple[tf.Tensor, tf.Tensor] | None = None,
                   tail: tf.Tensor | None = None) -> tf.Tensor:
    """1 / |x_n F| of rows x_n [c, p] given ``gram_factor`` F [p, p], or 1 / |x_n| without F.

    F is lower triangular, so with s = p // 2, ``|x F|^2 = |x F[:, :s]|^2 +
    |x[:, s:] F[s:, s:]|^2``: 3/4 of the multiply-adds of ``x F``, and faster than the whole
    factor where 3 or 4 blocks are not. ``factor`` holds those two blocks (``_factor_blocks``) and
    ``tail`` [c, p - s] the rows' last columns. One ``reduce_euclidean_norm`` pass per product:
    square-then-sum would take two. With ``l2_normalize``'s epsilon
    (an all-zero row scores 0, never NaN).
    """
    if factor is None:
        norms = tf.math.reduce_euclidean_norm(rows, axis=1)
    else:
        left, corner = factor
        head_norms = tf.math.reduce_euclidean_norm(tf.matmul(rows, left), axis=1)
        tail_norms = tf.math.reduce_euclidean_norm(tf.matmul(tail, corner), axis=1)
        norms = tf.sqrt(tf.square(head_norms) + tf.square(tail_norms))
    return tf.math.reciprocal(tf.maximum(norms, _NORM_EPSILON ** 0.5))


def _factor_blocks(factor: tf.Tensor, tail_width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``(F[:, :s], F[s:, s:])`` of a lower-triangular F [p, p], s = p - ``tail_width``.

    ``tail_width``: the width of the rows' ``head_tail``, which fixes s.
    """
    split = factor.shape[0] - tail_width
    return factor[:, :split], factor[split:, split:]


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


def _masked_argmax(queries: tf.Tensor, query_ids: tf.Tensor, bank, bank_ids: tf.Tensor,
                   chunk_size: int, factor: tuple[tf.Tensor, tf.Tensor] | None = None,
                   tail: tf.Tensor | None = None, exclude: tf.Tensor | None = None,
                   normalize: bool = False, first: tf.Tensor | None = None,
                   stop: tf.Tensor | None = None) -> tf.Tensor:
    """For each query, the bank row of highest score whose id differs from the query's.

    Args:
        queries: [B, p] float32.
        query_ids: [B] ids (any comparable dtype).
        bank: [N, p] float32 tensor or ``tf.Variable``.
        bank_ids: [N] ids, same dtype as ``query_ids``.
        chunk_size: bank rows scored per matmul (bounds the [B, chunk_size] score matrix).
        factor: optional ``_factor_blocks`` of a ``gram_factor`` F; row n then scores
            ``<q, x_n> / |x_n F|``.
        tail: with ``factor``, ``head_tail(bank)`` [N, p - p // 2].
        exclude: optional [B, P] int64: every bank row with query b's id, -1 padded (used
            instead of comparing ids).
        normalize: whether to score bank rows as if L2-normalized (without ``factor``): the
            [B, chunk] scores are divided by the rows' norms.
        first: int64 first bank row searched (None: 0).
        stop: int64 end of the searched rows (None: N); rows keep their bank numbering.

    Returns:
        ([B] int64 bank indices (ties go to the lowest index; ``NO_NEGATIVE`` when none),
        [B] float32 their scores (-inf when none)).

    """
    n = _num_rows(bank) if stop is None else tf.cast(stop, tf.int64)
    batch = tf.shape(queries)[0]
    best_score = tf.fill([batch], tf.constant(-float("inf"), tf.float32))
    best_index = tf.fill([batch], tf.constant(NO_NEGATIVE, tf.int64))

    def body(start, best_score, best_index):
        size = tf.minimum(tf.constant(chunk_size, tf.int64), n - start)
        rows = _chunk_rows(bank, start, size)
        if factor is None:
            scores = primitive_matmul.matmul(queries, rows, transpose_b=True)  # [B, chunk]
            if normalize:  # d-wide rows: scale the (usually smaller) scores
                scores *= _inverse_norms(rows)[None, :]
        else:  # narrow head inputs: scale the [chunk, p] rows
            rows *= _inverse_norms(rows, factor, _chunk_rows(tail, start, size))[:, None]
            # At this inner dimension (p = 384) sgemm is faster than the matmul primitive.
            scores = tf.matmul(queries, rows, transpose_b=True)
        chunk_index, chunk_best = _chunk_best(scores, query_ids,
                                              tf.slice(bank_ids, [start], [size]), start, exclude)
        better = chunk_best > best_score
        return (start + size, tf.where(better, chunk_best, best_score),
                tf.where(better, chunk_index + start, best_index))

    _, best_score, best_index = tf.while_loop(
        lambda start, *_: start < n, body,
        (tf.constant(0, tf.int64) if first is None else tf.cast(first, tf.int64), best_score,
         best_index),
        parallel_iterations=2,  # at most two chunks in flight: the memory bound holds
    )
    return best_index, best_score


# Tensor banks run in one shared graph. A variable bank must not be a tf.function argument: a
# trace generalized over shapes keeps reading the variable it was traced with, so it runs in the
# caller's graph instead (``EmbeddingBank.mine`` is a tf.function of its own bank).
_masked_argmax_graph = tf.function(_masked_argmax, reduce_retracing=True)


def _as_ids(ids) -> tf.Tensor:
    ids = tf.convert_to_tensor(ids)
    return ids if ids.dtype == tf.string else tf.cast(ids, tf.int64)


def _as_float(x):
    """float32 tensor; a float32 ``tf.Variable`` stays a variable (read by chunks)."""
    if isinstance(x, tf.Variable) and x.dtype == tf.float32:
        return x
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def hardest_rows(queries, query_ids, bank, bank_ids, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 head_kernel=None, exclude_rows=None, normalize_bank: bool = False,
                 bank_tail=None, with_scores: bool = False, row_range=None):
    """For each query, the bank row of highest score whose id differs from the query's id.

    Args:
        queries: [B, d] L2-normalized query embeddings.
        query_ids: [B] ids (string or integer).
        bank: [N, d] candidate embeddings (tensor, array or ``tf.Variable``), or with
            ``head_kernel`` the [N, p] inputs of a linear head (module docstring).
        bank_ids: [N] their ids.
        chunk_size: bank rows scored per matmul (memory bound, see the module docstring).
        head_kernel: optional [p, d] kernel W; row n is then scored as ``normalize(bank[n] @ W)``.
        exclude_rows: optional [B, P] int: all bank rows whose id is query b's, padded with -1.
            The caller's guarantee replaces the [B, chunk] id comparison by P writes per query.
        normalize_bank: the bank rows are unnormalized embeddings (e.g. ``x @ W`` of a linear
            head), scored as if L2-normalized (scores divided by the row norms).
        bank_tail: with ``head_kernel``, optionally ``head_tail(bank)``, kept by a caller that
            mines the same inputs at every step (else sliced here, a copy).
        with_scores: also return each found row's score [B] float32 (-inf where none), as the
            search computed it; replicas that search shards of a bank compare these.
        row_range: optional ``(first, stop)`` int64: search bank rows [first, stop) only (a
            replica's shard, read in place), returned as rows of the whole bank.

    Returns:
        [B] int64 bank rows (ties to the lowest row; ``NO_NEGATIVE`` where every row shares the
        query's id); with ``with_scores``, ``(rows, scores)``.

    Raises:
        ValueError: ``chunk_size`` < 1.

    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    queries, factor, tail = _as_float(queries), None, None
    bank = _as_float(bank)
    if head_kernel is not None:
        kernel = tf.stop_gradient(_as_float(tf.convert_to_tensor(head_kernel)))
        queries = tf.matmul(queries, kernel, transpose_b=True)  # [B, p]
        tail = head_tail(bank) if bank_tail is None else _as_float(bank_tail)
        factor = _factor_blocks(gram_factor(kernel), tail.shape[1])
    argmax = _masked_argmax if isinstance(bank, tf.Variable) else _masked_argmax_graph
    exclude = None if exclude_rows is None else tf.cast(exclude_rows, tf.int64)
    first, stop = (None, None) if row_range is None else row_range
    rows, scores = argmax(tf.stop_gradient(queries), _as_ids(query_ids), bank, _as_ids(bank_ids),
                          chunk_size, factor, tail, exclude, normalize_bank, first, stop)
    return (rows, scores) if with_scores else rows


def hardest_negatives(
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
    neg_image = hardest_rows(query_text, query_image_ids, bank_image, bank_image_ids, chunk_size)
    neg_text = hardest_rows(query_image, query_image_ids, bank_text, bank_text_image_ids,
                            chunk_size)
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


class EmbeddingBank(tf.Module):
    """On-device embeddings of the whole training set, for global hard-negative mining.

    Images are stored once per image (row = image index) and captions once per caption, with
    the integer image index of each caption; mined indices therefore index the training set's
    image and caption tables directly.

    Under a ``tf.distribute`` strategy every replica holds a bank of its own
    (``distribute.replica_variable``): replicas that write the same rows keep equal banks.
    """

    def __init__(self, text_image_index, num_images: int, dim: int,
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        """Creates an all-zero bank.

        Args:
            text_image_index: [N_c] int, the image index (0..num_images-1) of each caption.
            num_images: N_i, number of distinct training images.
            dim: embedding size d.
            chunk_size: bank rows scored per matmul when mining.

        """
        super().__init__(name="embedding_bank")
        self.chunk_size = chunk_size
        self.image_ids = tf.range(num_images, dtype=tf.int64)
        self.text_image_ids = tf.constant(text_image_index, tf.int64)
        num_captions = int(self.text_image_ids.shape[0])
        self.image = distribute.replica_variable(tf.zeros([num_images, dim]), "image")
        self.text = distribute.replica_variable(tf.zeros([num_captions, dim]), "text")

    def update(self, image_index, image_rows, text_index, text_rows) -> None:
        """Overwrites bank rows: ``image[image_index] = image_rows`` (shapes [B], [B, d]).

        Through the handles: a replica's own copies (which have no scatter methods).
        """
        for bank, index, rows in ((self.image, image_index, image_rows),
                                  (self.text, text_index, text_rows)):
            tf.raw_ops.ResourceScatterNdUpdate(ref=bank.handle,
                                               indices=tf.cast(index, tf.int64)[:, None],
                                               updates=tf.cast(rows, tf.float32))

    def mine(self, query_image, query_text, query_image_index) -> tuple[tf.Tensor, tf.Tensor]:
        """``hardest_negatives`` of a batch against the whole bank (``chunk_size`` rows a time).

        Args:
            query_image: [B, d] image embeddings.
            query_text: [B, d] caption embeddings.
            query_image_index: [B] int image index of each pair.

        Returns:
            ``(neg_image_index [B], neg_text_index [B])`` into the bank's image/caption rows.

        """
        return self._mine(query_image, query_text, query_image_index, self.chunk_size)

    @tf.function(reduce_retracing=True)
    def _mine(self, query_image, query_text, query_image_index, chunk_size: int):
        """``mine`` in a graph of this bank's own (a new ``chunk_size`` traces a new one)."""
        return hardest_negatives(query_image, query_text, query_image_index, self.image,
                                 self.image_ids, self.text, self.text_image_ids,
                                 chunk_size=chunk_size)
