"""The collection searcher: settings from the size, exact brute force, ScaNN's recall and files."""

from __future__ import annotations

import numpy as np
import pytest

from serving.collection.searcher import (
    BRUTE_FORCE,
    BRUTE_FORCE_BELOW,
    SCANN,
    build_searcher,
    load_searcher,
    save_searcher,
    settings_for,
)


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 200, 1), dim))
    rows = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_settings_follow_the_collection_size():
    assert settings_for(BRUTE_FORCE_BELOW - 1).kind == BRUTE_FORCE
    small = settings_for(BRUTE_FORCE_BELOW)
    assert (small.kind, small.num_leaves, small.num_leaves_to_search) == (SCANN, 100, 20)
    big = settings_for(1_000_000)
    assert (big.num_leaves, big.num_leaves_to_search, big.training_sample_size) == (
        1000, 25, 250_000)
    assert (big.dimensions_per_block, big.reorder, big.spherical) == (2, 200, True)


def test_brute_force_is_exact_and_keeps_the_lower_row_first_on_ties():
    rows = np.eye(4, dtype=np.float32)[[0, 1, 1, 2, 3]]
    searcher = build_searcher(rows, settings_for(len(rows)))
    scores, indices = searcher.search(np.asarray([[0.0, 1.0, 0.0, 0.0]]), k=3)
    assert indices[0].tolist()[:2] == [1, 2] and scores[0, 0] == pytest.approx(1.0)
    assert searcher.search(rows[:1], k=50)[1].shape == (1, 5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        searcher.search(rows[:1], k=0)


def test_scann_finds_the_exact_neighbours_and_reads_back_what_it_wrote(tmp_path):
    rows = _clustered(BRUTE_FORCE_BELOW + 2000, 32)
    queries = _clustered(200, 32, seed=1)
    settings = settings_for(len(rows))
    scann = build_searcher(rows, settings)
    exact = build_searcher(rows, settings_for(1))
    _, found = scann.search(queries, k=10)
    _, truth = exact.search(queries, k=10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95
    save_searcher(scann, str(tmp_path / "scann"))
    loaded = load_searcher(rows, settings, str(tmp_path / "scann"))
    np.testing.assert_array_equal(loaded.search(queries, k=10)[1], found)
    with pytest.raises(ValueError, match="ScaNN holds"):
        load_searcher(rows[:-1], settings, str(tmp_path / "scann"))
