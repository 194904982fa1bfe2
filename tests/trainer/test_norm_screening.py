"""Norm screening: the drift bound, the candidate rows, and ScreenedHead == exact head mining."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import mining, norm_screening


@pytest.mark.parametrize("kind", ["gaussian", "rank_1", "tiny"])
def test_spectral_norm_bound_is_an_upper_bound_and_close(kind):
    rng = np.random.default_rng(0)
    matrix = {"gaussian": rng.normal(size=(40, 90)),
              "rank_1": np.outer(rng.normal(size=40), rng.normal(size=90)),
              "tiny": 1e-9 * rng.normal(size=(40, 90))}[kind].astype(np.float32)
    sigma = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)[0]
    bound = float(norm_screening.spectral_norm_bound(tf.constant(matrix)))
    # at most rank^(1/64) (1.06 for rank 40) above sigma, never below it
    assert sigma <= bound <= sigma * 40 ** (1 / 64) * 1.001


def test_spectral_norm_bound_of_zero_is_zero():
    assert float(norm_screening.spectral_norm_bound(tf.zeros([5, 7]))) == 0.0


def _problem(seed, rows=300, p=6, d=16, queries=9):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(rows, p)).astype(np.float32)
    ids = np.repeat(np.arange(rows // 5), 5)
    query = rng.normal(size=(queries, d))
    query = (query / np.linalg.norm(query, axis=1, keepdims=True)).astype(np.float32)
    query_ids = rng.integers(0, rows // 5, size=queries)
    kernel = rng.normal(size=(p, d)).astype(np.float32)
    return rng, inputs, ids, query, query_ids, kernel


@pytest.mark.parametrize("scale", [0.0, 0.01, 0.1])
def test_candidates_hold_the_exact_row_for_kernels_within_the_bound(scale):
    rng, inputs, ids, query, query_ids, reference = _problem(1)
    kernel = reference + scale * rng.normal(size=reference.shape).astype(np.float32)
    norms = np.linalg.norm(inputs @ reference, axis=1)
    sigma = float(norm_screening.spectral_norm_bound(tf.constant(kernel - reference)))
    beta = sigma * np.max(np.linalg.norm(inputs, axis=1) / norms) + norm_screening.ROUNDING_SLACK
    rows = norm_screening.candidate_rows(
        tf.constant(query @ kernel.T), tf.constant(query_ids, tf.int64), tf.constant(inputs),
        tf.constant(1 / norms, tf.float32), tf.constant(ids, tf.int64),
        tf.constant(beta, tf.float32), chunk_size=64).numpy()
    exact = mining.hardest_rows(query, query_ids, inputs, ids, 64, head_kernel=kernel).numpy()
    assert set(exact) <= set(rows.tolist())
    assert (np.diff(rows) > 0).all()  # ascending, no repeats
    if scale == 0.0:  # stale norms are exact: few rows survive
        assert len(rows) < len(inputs) / 4


def _updates(rng, kernel, scales):
    for scale in scales:
        kernel.assign_add(scale * rng.normal(size=kernel.shape).astype(np.float32))
        yield kernel


@pytest.mark.parametrize("use_exclude", [False, True])
def test_screened_head_equals_exact_head_mining_as_the_kernel_moves(use_exclude):
    rng, inputs, ids, query, query_ids, start = _problem(2)
    kernel = tf.Variable(start)
    head = norm_screening.ScreenedHead(tf.constant(inputs), kernel, ids, chunk_size=50,
                                       max_drift=0.05)
    exclude = mining.as_ids(np.stack([np.flatnonzero(ids == q) for q in query_ids]))
    refreshes = []
    for _ in _updates(rng, kernel, [0.0, 0.002, 0.002, 0.05, 0.001, 0.3, 0.0]):
        got = head.hardest(query, query_ids, exclude if use_exclude else None)
        expected = mining.hardest_rows(query, query_ids, inputs, ids, 50,
                                       head_kernel=kernel.numpy())
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
        refreshes.append(int(head.refreshes.numpy()))
    # the first search takes the reference; small steps keep it; large ones re-take it
    assert refreshes[0] == 1 and refreshes[1] == refreshes[2] == 1
    assert refreshes[3] == 2 and refreshes[5] == refreshes[4] + 1
    assert 0 < int(head.candidates.numpy()) < len(inputs)


def test_screened_head_reports_no_negative_when_all_rows_are_the_querys():
    inputs = np.eye(3, 4, dtype=np.float32)
    kernel = tf.Variable(np.ones((4, 8), np.float32) + np.eye(4, 8, dtype=np.float32))
    head = norm_screening.ScreenedHead(tf.constant(inputs), kernel, [7, 7, 7], chunk_size=2)
    query = np.full((1, 8), 8 ** -0.5, np.float32)
    assert head.hardest(query, [7]).numpy().tolist() == [mining.NO_NEGATIVE]


@pytest.mark.parametrize("max_drift", [0.0, 0.6])
def test_bad_max_drift_raises(max_drift):
    with pytest.raises(ValueError, match="max_drift"):
        norm_screening.ScreenedHead(tf.zeros([2, 3]), tf.Variable(tf.zeros([3, 4])), [0, 1],
                                    chunk_size=2, max_drift=max_drift)
