"""Hard-negative mining: hand-computed case, chunking, in-batch == global, no same-image."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import mining
from trainer.negatives import embedding_bank, head_norms


def _brute_force(queries, query_ids, bank, bank_ids):
    scores = queries @ bank.T
    scores[query_ids[:, None] == bank_ids[None, :]] = -np.inf
    return scores.argmax(axis=1)


def _unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_hand_computed_negatives():
    # Bank images: 0=(1,0) id a, 1=(0,1) id b, 2=(.6,.8) id c.
    # Captions: 0=(.8,.6) of a, 1=(0,1) of b, 2=(1,0) of c.
    bank_image = np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)
    bank_text = np.array([[0.8, 0.6], [0, 1], [1, 0]], np.float32)
    # Query pair (image a, caption 0 of a): caption (.8,.6) scores images .8 (a, masked),
    # .6 (b), .96 (c) -> image 2; image (1,0) scores captions .8 (a, masked), 0, 1 -> caption 2.
    # Query pair of image b: caption (0,1) scores .0, 1 (b, masked), .8 -> image 2;
    # image (0,1) scores captions .6, 1 (masked), 0 -> caption 0.
    neg_image, neg_text = mining.hardest_negatives(
        bank_image[:2], bank_text[:2], np.array([b"a", b"b"]), bank_image,
        np.array([b"a", b"b", b"c"]), bank_text, np.array([b"a", b"b", b"c"]))
    assert neg_image.numpy().tolist() == [2, 2]
    assert neg_text.numpy().tolist() == [2, 0]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 100_000])
def test_chunked_matches_brute_force_and_never_same_image(chunk_size):
    rng = np.random.default_rng(0)
    num_images, per_image, batch = 20, 5, 12
    bank_image = _unit(rng.normal(size=(num_images, 8)))
    bank_text = _unit(rng.normal(size=(num_images * per_image, 8)))
    text_ids = np.repeat(np.arange(num_images), per_image)
    query_ids = rng.integers(0, num_images, size=batch)
    query_image, query_text = bank_image[query_ids], _unit(rng.normal(size=(batch, 8)))
    neg_image, neg_text = mining.hardest_negatives(
        query_image, query_text, query_ids, bank_image, np.arange(num_images), bank_text,
        text_ids, chunk_size=chunk_size)
    neg_image, neg_text = neg_image.numpy(), neg_text.numpy()
    np.testing.assert_array_equal(
        neg_image, _brute_force(query_text, query_ids, bank_image, np.arange(num_images)))
    np.testing.assert_array_equal(neg_text, _brute_force(query_image, query_ids, bank_text,
                                                         text_ids))
    assert not np.any(neg_image == query_ids)
    assert not np.any(text_ids[neg_text] == query_ids)


def test_in_batch_equals_global_when_bank_is_the_batch():
    rng = np.random.default_rng(1)
    image_index = np.array([0, 0, 1, 2, 3, 3, 4])  # pairs of a batch, two images repeated
    image_table = _unit(rng.normal(size=(5, 6)))
    image, text = image_table[image_index], _unit(rng.normal(size=(7, 6)))
    in_batch = mining.in_batch_negatives(image, text, image_index)  # the Trainer's in-batch path
    bank = embedding_bank.EmbeddingBank(image_index, num_images=5, dim=6, chunk_size=3)
    bank.update(image_index, image, np.arange(7), text)
    global_image, global_text = bank.mine(image, text, image_index)
    # In-batch indices address batch rows, global ones bank rows: compare what they point to.
    np.testing.assert_array_equal(image_index[in_batch[0].numpy()], global_image.numpy())
    np.testing.assert_array_equal(in_batch[1].numpy(), global_text.numpy())


@pytest.mark.parametrize("seed", [0, 1])
def test_in_batch_negatives_equal_hardest_negatives_with_the_batch_as_bank(seed):
    rng = np.random.default_rng(seed)
    image, text = _unit(rng.normal(size=(12, 8))), _unit(rng.normal(size=(12, 8)))
    ids = np.array([0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4, 5])
    expected_image = _brute_force(text, ids, image, ids)  # caption b's hardest image row
    expected_text = _brute_force(image, ids, text, ids)
    neg_image, neg_text = mining.in_batch_negatives(image, text, ids)
    np.testing.assert_array_equal(neg_image.numpy(), expected_image)
    np.testing.assert_array_equal(neg_text.numpy(), expected_text)
    theirs = mining.hardest_negatives(image, text, ids, image, ids, text, ids)
    np.testing.assert_array_equal(neg_image.numpy(), theirs[0].numpy())
    np.testing.assert_array_equal(neg_text.numpy(), theirs[1].numpy())


def test_in_batch_negatives_report_none_when_the_batch_has_one_image():
    image = _unit([[1, 0], [0, 1], [1, 1]])
    neg_image, neg_text = mining.in_batch_negatives(image, image, [3, 3, 3])
    assert neg_image.numpy().tolist() == neg_text.numpy().tolist() == [mining.NO_NEGATIVE] * 3


def test_no_negative_is_reported():
    rows = _unit(np.eye(3)[:2])
    neg_image, neg_text = mining.hardest_negatives(rows, rows, [7, 7], rows, [7, 7], rows, [7, 7])
    assert neg_image.numpy().tolist() == [mining.NO_NEGATIVE] * 2
    assert neg_text.numpy().tolist() == [mining.NO_NEGATIVE] * 2


def test_bad_chunk_size_raises():
    rows = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="chunk_size"):
        mining.hardest_negatives(rows, rows, [0, 1], rows, [0, 1], rows, [0, 1], chunk_size=0)


def test_linear_head_scores_like_the_embeddings_it_makes():
    # Head W maps x=(1,0) -> (3,4) (norm 5) and x=(0,1) -> (0,1); inputs (1,0), (0,1), (1,1).
    # Embeddings: (.6,.8), (0,1), (3,5)/sqrt(34) = (.5145,.8575). Query (1,0) scores them
    # .6, 0, .5145 -> row 0; with row 0 masked (same id) -> row 2.
    kernel = np.array([[3, 4], [0, 1]], np.float32)
    inputs = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    query = np.array([[1, 0], [1, 0]], np.float32)
    rows = mining.hardest_rows(query, [9, 5], inputs, [5, 6, 7],
                               mining.BankScoring(head_kernel=kernel))
    assert rows.numpy().tolist() == [0, 2]


@pytest.mark.parametrize("chunk_size", [1, 5, 100])
def test_linear_head_matches_brute_force_on_embeddings(chunk_size):
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(40, 6)).astype(np.float32)
    kernel = rng.normal(size=(6, 16)).astype(np.float32)
    ids = np.repeat(np.arange(8), 5)
    queries = _unit(rng.normal(size=(9, 16)))
    query_ids = rng.integers(0, 8, size=9)
    embeddings = _unit(inputs @ kernel)
    rows = mining.hardest_rows(queries, query_ids, inputs, ids,
                               mining.BankScoring(chunk_size, head_kernel=kernel))
    np.testing.assert_array_equal(rows.numpy(),
                                  _brute_force(queries, query_ids, embeddings, ids))


@pytest.mark.parametrize("kind", ["full_rank", "rank_2", "zero"])
def test_gram_factor_gives_the_head_norms(kind):
    # |x F| = |x W| for every row x, F lower triangular; a singular W W^T (rank 2 of 6, or all
    # zeros) makes the Cholesky factor NaN, and the eigendecomposition's (made triangular)
    # takes over.
    rng = np.random.default_rng(5)
    kernel = {"full_rank": rng.normal(size=(6, 16)),
              "rank_2": rng.normal(size=(6, 2)) @ rng.normal(size=(2, 16)),
              "zero": np.zeros((6, 16))}[kind].astype(np.float32)
    rows = rng.normal(size=(20, 6)).astype(np.float32)
    factor = head_norms.gram_factor(tf.constant(kernel)).numpy()
    assert np.isfinite(factor).all()
    np.testing.assert_allclose(np.linalg.norm(rows @ factor, axis=1),
                               np.linalg.norm(rows @ kernel, axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(factor, np.tril(factor))


@pytest.mark.parametrize("width", [1, 5, 6])
def test_norms_through_the_triangular_blocks_equal_the_head_norms(width):
    # |x F|^2 = |x F[:, :s]|^2 + |x[:, s:] F[s:, s:]|^2, s = width // 2, for odd widths too.
    rng = np.random.default_rng(8)
    kernel = rng.normal(size=(width, 16)).astype(np.float32)
    rows = rng.normal(size=(20, width)).astype(np.float32)
    tail = head_norms.head_tail(rows)
    factor = head_norms.factor_blocks(head_norms.gram_factor(tf.constant(kernel)), tail.shape[1])
    inverse = head_norms.inverse_norms(tf.constant(rows), factor, tail)
    np.testing.assert_allclose(1 / inverse.numpy(), np.linalg.norm(rows @ kernel, axis=1),
                               rtol=1e-5)


def test_kept_head_tail_gives_the_same_rows_as_slicing_it():
    rng = np.random.default_rng(9)
    inputs = rng.normal(size=(40, 7)).astype(np.float32)
    kernel = rng.normal(size=(7, 16)).astype(np.float32)
    ids = np.repeat(np.arange(8), 5)
    queries, query_ids = _unit(rng.normal(size=(9, 16))), rng.integers(0, 8, size=9)
    sliced = mining.hardest_rows(queries, query_ids, inputs, ids,
                                 mining.BankScoring(6, head_kernel=kernel))
    kept = mining.hardest_rows(queries, query_ids, inputs, ids, mining.BankScoring(
        6, head_kernel=kernel, bank_tail=head_norms.head_tail(inputs)))
    np.testing.assert_array_equal(kept.numpy(), sliced.numpy())
    np.testing.assert_array_equal(sliced.numpy(),
                                  _brute_force(queries, query_ids, _unit(inputs @ kernel), ids))


def test_rank_deficient_linear_head_matches_brute_force():
    rng = np.random.default_rng(6)
    inputs = rng.normal(size=(30, 6)).astype(np.float32)
    kernel = (rng.normal(size=(6, 3)) @ rng.normal(size=(3, 16))).astype(np.float32)
    ids = np.repeat(np.arange(6), 5)
    queries = _unit(rng.normal(size=(7, 16)))
    query_ids = rng.integers(0, 6, size=7)
    rows = mining.hardest_rows(queries, query_ids, inputs, ids,
                               mining.BankScoring(8, head_kernel=kernel))
    np.testing.assert_array_equal(rows.numpy(),
                                  _brute_force(queries, query_ids, _unit(inputs @ kernel), ids))


def test_variable_bank_is_read_by_chunks_with_the_same_result():
    rng = np.random.default_rng(3)
    bank = _unit(rng.normal(size=(30, 4)))
    ids = np.arange(30) // 3
    queries, query_ids = _unit(rng.normal(size=(6, 4))), np.array([0, 1, 2, 3, 4, 9])
    variable = tf.Variable(bank)
    variable.scatter_nd_update([[0]], bank[:1])  # a sparse write, as EmbeddingBank.update does
    from_variable = mining.hardest_rows(queries, query_ids, variable, ids,
                                        mining.BankScoring(chunk_size=7))
    np.testing.assert_array_equal(from_variable.numpy(),
                                  _brute_force(queries, query_ids, bank, ids))


def test_banks_of_different_sizes_each_mine_their_own_rows():
    # Regression: a tf.function trace generalized over shapes kept reading the variable of an
    # earlier call, so a later, larger bank was mined as the earlier one.
    rng = np.random.default_rng(4)
    for num_images in (3, 40, 700):
        image_index = np.arange(num_images * 2) // 2
        bank = embedding_bank.EmbeddingBank(image_index, num_images, dim=8, chunk_size=16)
        image, text = _unit(rng.normal(size=(num_images, 8))), _unit(
            rng.normal(size=(num_images * 2, 8)))
        bank.update(np.arange(num_images), image, np.arange(num_images * 2), text)
        queries, query_ids = _unit(rng.normal(size=(4, 8))), np.array([0, 1, 2, 0])
        neg_image, neg_text = bank.mine(queries, queries, query_ids)
        np.testing.assert_array_equal(
            neg_image.numpy(), _brute_force(queries, query_ids, image, np.arange(num_images)))
        np.testing.assert_array_equal(neg_text.numpy(),
                                      _brute_force(queries, query_ids, text, image_index))


@pytest.mark.parametrize("chunk_size", [1, 4, 100])
def test_excluded_rows_replace_the_id_comparison(chunk_size):
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 6, size=25)
    bank, queries = _unit(rng.normal(size=(25, 4))), _unit(rng.normal(size=(7, 4)))
    query_ids = rng.integers(0, 6, size=7)
    rows_of = [np.flatnonzero(ids == i) for i in query_ids]
    exclude = np.full((7, max(len(r) for r in rows_of)), -1)
    for b, rows in enumerate(rows_of):
        exclude[b, :len(rows)] = rows
    by_rows = mining.hardest_rows(queries, query_ids, bank, ids,
                                  mining.BankScoring(chunk_size, exclude_rows=exclude))
    np.testing.assert_array_equal(by_rows.numpy(), _brute_force(queries, query_ids, bank, ids))


def test_a_new_chunk_size_is_honoured_after_the_first_mining():
    rng = np.random.default_rng(6)
    image_index = np.arange(12) // 2
    bank = embedding_bank.EmbeddingBank(image_index, 6, dim=4, chunk_size=5)
    bank.update(np.arange(6), _unit(rng.normal(size=(6, 4))), np.arange(12),
                _unit(rng.normal(size=(12, 4))))
    queries = _unit(rng.normal(size=(3, 4)))
    first = bank.mine(queries, queries, [0, 1, 2])
    bank.chunk_size = 12  # e.g. the unchunked comparison of bench_mining_scaling
    again = bank.mine(queries, queries, [0, 1, 2])
    assert bank._mine.experimental_get_tracing_count() == 2
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_excluded_rows_that_score_highest_are_searched_again(chunk_size):
    # Each query is one of its own rows, so the unmasked argmax of every chunk holding its rows
    # is excluded and must be replaced; query 0's id also fills a whole chunk ([0, 3)).
    rng = np.random.default_rng(7)
    ids = np.array([0, 0, 0, 1, 2, 2, 3, 1, 4, 4, 5, 3])
    bank = _unit(rng.normal(size=(12, 5)))
    query_rows = np.array([1, 3, 5, 6, 9, 10, 2])
    queries, query_ids = bank[query_rows], ids[query_rows]
    rows_of = [np.flatnonzero(ids == i) for i in query_ids]
    exclude = np.full((len(query_rows), 3), -1)
    for b, rows in enumerate(rows_of):
        exclude[b, :len(rows)] = rows
    by_rows = mining.hardest_rows(queries, query_ids, bank, ids,
                                  mining.BankScoring(chunk_size, exclude_rows=exclude))
    expected = _brute_force(queries, query_ids, bank, ids)
    np.testing.assert_array_equal(by_rows.numpy(), expected)
    assert (ids[(queries @ bank.T).argmax(axis=1)] == query_ids).all()  # unmasked: own rows
    assert (ids[expected] != query_ids).all()


def test_excluded_rows_leave_no_negative_when_every_row_is_excluded():
    bank = _unit(np.random.default_rng(8).normal(size=(4, 3)))
    rows = mining.hardest_rows(bank[:2], [7, 7], bank, [7, 7, 7, 7], mining.BankScoring(
        chunk_size=3, exclude_rows=np.tile(np.arange(4), (2, 1))))
    np.testing.assert_array_equal(rows.numpy(), [mining.NO_NEGATIVE] * 2)


def test_trainer_default_chunk_size_is_the_mining_default():
    from trainer.config import TrainerConfig

    assert TrainerConfig().mining_chunk_size == mining.DEFAULT_CHUNK_SIZE


@pytest.mark.parametrize("num_queries", [3, 40])  # fewer queries than d: scores are scaled
def test_normalize_bank_matches_brute_force_on_normalized_rows(num_queries):
    rng = np.random.default_rng(9)
    products = rng.normal(size=(30, 16)).astype(np.float32) * rng.uniform(0.5, 3, size=(30, 1))
    ids = np.arange(30) // 3
    queries = _unit(rng.normal(size=(num_queries, 16)))
    query_ids = rng.integers(0, 10, size=num_queries)
    rows = mining.hardest_rows(queries, query_ids, products.astype(np.float32), ids,
                               mining.BankScoring(chunk_size=7, normalize=True))
    np.testing.assert_array_equal(rows.numpy(),
                                  _brute_force(queries, query_ids, _unit(products), ids))


@pytest.mark.parametrize("as_variable", [False, True])
def test_a_row_range_is_searched_alone_and_its_rows_keep_their_bank_numbers(as_variable):
    bank = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1], [-1, 0]], np.float32)
    bank = tf.Variable(bank) if as_variable else bank
    queries, ids = np.array([[1, 0], [0, 1]], np.float32), np.arange(5)
    rows, scores = mining.best_rows(queries, [9, 9], bank, ids,
                                    mining.BankScoring(chunk_size=2, row_range=(2, 5)))
    np.testing.assert_array_equal(rows, [2, 3])  # rows 0 and 1 score higher, but are outside
    np.testing.assert_allclose(scores, [0.6, 1.0], rtol=1e-6)
    by_id = mining.hardest_rows(queries, [2, 3], bank, ids,
                                mining.BankScoring(2, row_range=(2, 5)))
    by_rows = mining.hardest_rows(queries, [9, 9], bank, ids, mining.BankScoring(
        2, row_range=(2, 5), exclude_rows=[[2], [3]]))
    np.testing.assert_array_equal(by_id, [3, 2])
    np.testing.assert_array_equal(by_rows, [3, 2])
