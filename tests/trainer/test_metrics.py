import math

import numpy as np
import pytest

from trainer import metrics

E0, E1, E2 = np.eye(3)
DIAG = np.array([1.0, 1.0, 0.0]) / math.sqrt(2.0)


def _unit(*rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_perfect_ranking():
    out = metrics.retrieval_metrics(np.eye(3), ["a", "b", "c"], np.eye(3), ["a", "b", "c"])
    for way in ("i2t", "t2i"):
        assert out[f"{way}_r1"] == out[f"{way}_r5"] == out[f"{way}_r10"] == 100.0
        assert out[f"{way}_medr"] == out[f"{way}_meanr"] == 1.0
    assert out["rsum"] == 600.0


def test_reversed_ranking_puts_every_positive_last():
    text = _unit([0, 1, 1], [1, 0, 1], [1, 1, 0])  # caption i is orthogonal to image i only
    out = metrics.retrieval_metrics(np.eye(3), ["a", "b", "c"], text, ["a", "b", "c"])
    for way in ("i2t", "t2i"):
        assert out[f"{way}_r1"] == 0.0
        assert out[f"{way}_r5"] == out[f"{way}_r10"] == 100.0
        assert out[f"{way}_medr"] == out[f"{way}_meanr"] == 3.0
    assert out["rsum"] == 400.0


def test_ties_do_not_push_the_positive_down():
    image = np.stack([E0, E0, E1])  # images a and b are identical
    text = np.stack([E0, E0, E1])
    out = metrics.retrieval_metrics(image, ["a", "b", "c"], text, ["a", "b", "c"])
    assert out["t2i_r1"] == 100.0 and out["i2t_r1"] == 100.0
    assert out["t2i_meanr"] == 1.0 and out["i2t_meanr"] == 1.0


def test_one_image_with_five_captions_and_repeated_image_rows():
    text = np.stack([E0, E1, DIAG, E1, -E0, E0])
    text_ids = ["A"] * 5 + ["B"]
    image = np.stack([E0] * 5 + [E1])  # one row per caption: deduplicated by id
    out = metrics.retrieval_metrics(image, text_ids, text, text_ids)
    # t2i ranks [1, 2, 1, 2, 2, 2]; i2t ranks: A -> 1 (a1 ties b1), B -> 4 (a2, a3, a4 above).
    assert out["t2i_r1"] == pytest.approx(100.0 / 3.0)
    assert out["t2i_r5"] == 100.0
    assert out["t2i_medr"] == 2.0
    assert out["t2i_meanr"] == pytest.approx(10.0 / 6.0)
    assert out["i2t_r1"] == 50.0 and out["i2t_r5"] == 100.0
    assert out["i2t_medr"] == 2.5 and out["i2t_meanr"] == 2.5
    assert out["rsum"] == pytest.approx(50 + 100 + 100 + 100 / 3 + 100 + 100)


def test_chunking_does_not_change_ranks():
    rng = np.random.default_rng(0)
    image = _unit(*rng.normal(size=(7, 4)))
    ids = np.arange(7)
    text_ids = np.repeat(ids, 3)
    text = _unit(*(image[text_ids] + rng.normal(scale=0.8, size=(21, 4))))
    whole = metrics.retrieval_metrics(image, ids, text, text_ids, chunk=1000)
    assert metrics.retrieval_metrics(image, ids, text, text_ids, chunk=2) == whole


def test_custom_ks_and_rsum():
    out = metrics.retrieval_metrics(np.eye(2), [b"x", b"y"], np.eye(2), [b"x", b"y"], ks=(1, 2))
    assert set(out) == {"i2t_r1", "i2t_r2", "t2i_r1", "t2i_r2", "rsum", "i2t_medr", "t2i_medr",
                        "i2t_meanr", "t2i_meanr"}
    assert out["rsum"] == 400.0


def test_unknown_caption_image_is_rejected():
    with pytest.raises(ValueError, match="caption 1: image id 'z'"):
        metrics.retrieval_metrics(np.eye(2), ["x", "y"], np.eye(2), ["x", "z"])


def test_image_without_caption_is_rejected():
    with pytest.raises(ValueError, match="gallery image 'y' has no caption"):
        metrics.retrieval_metrics(np.eye(2), ["x", "y"], np.eye(2), ["x", "x"])


def test_ndcg_hand_computed():
    scores = np.array([[3.0, 2.0, 1.0]])
    relevance = np.array([[0.0, 1.0, 1.0]])
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert metrics.ndcg(scores, relevance, k=3) == pytest.approx(dcg / idcg)
    assert metrics.ndcg(scores, relevance, k=2) == pytest.approx((1 / math.log2(3)) / idcg)


def test_ndcg_perfect_reversed_and_graded_gain():
    relevance = np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    perfect = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    # Row 2 has no relevant item: its nDCG is 0, so the mean is 0.5.
    assert metrics.ndcg(perfect, relevance) == pytest.approx(0.5)
    reversed_rows = metrics.ndcg_rows(-perfect, relevance)
    gain_half = math.sqrt(2.0) - 1.0
    expected = (gain_half / math.log2(3) + 1 / math.log2(4)) / (1 + gain_half / math.log2(3))
    assert reversed_rows[0] == pytest.approx(expected)


def test_ndcg_ties_break_by_lower_index():
    # Items 0 and 1 tie; item 0 (irrelevant) is ranked first.
    assert metrics.ndcg(np.array([[1.0, 1.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]), k=1) == 0.0
    assert metrics.ndcg(np.array([[1.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]), k=1) == 1.0
    wide = np.zeros((1, 40))
    rel = np.zeros((1, 40))
    rel[0, 30] = 1.0  # ties everywhere: the top 25 are items 0..24, which miss item 30
    assert metrics.ndcg(wide, rel, k=25) == 0.0


def test_ndcg_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="must be equal"):
        metrics.ndcg(np.zeros((2, 3)), np.zeros((3, 2)))


def _brute_force_semantic(image, text, text_ids, relevance, k):
    n_txt, n_img = relevance.shape
    own = np.asarray(text_ids)
    image_rel = np.stack([relevance[own == i].mean(axis=0) for i in range(n_img)])
    out = {"t2i_ndcg": metrics.ndcg(text @ image.T, relevance, k),
           "i2t_ndcg": metrics.ndcg(image @ text.T, relevance.T, k)}
    rows = []
    for i in range(n_img):
        keep = np.arange(n_img) != i
        rows.append(metrics.ndcg((image[i] @ image[keep].T)[None], image_rel[i, keep][None], k))
    out["i2i_ndcg"] = float(np.mean(rows))
    rows = []
    for q in range(n_txt):
        keep = own != own[q]
        rows.append(metrics.ndcg((text[q] @ text[keep].T)[None],
                                 relevance[q, own[keep]][None], k))
    out["t2t_ndcg"] = float(np.mean(rows))
    return out


def test_semantic_ndcg_matches_brute_force_with_exclusions():
    rng = np.random.default_rng(1)
    image = _unit(*rng.normal(size=(5, 4)))
    text_ids = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 4])
    text = _unit(*(image[text_ids] + rng.normal(scale=0.7, size=(10, 4))))
    relevance = rng.uniform(size=(10, 5))
    got = metrics.semantic_ndcg(image[text_ids], text_ids, text, text_ids, relevance,
                                metrics.NdcgOptions(k=3, chunk=3))
    want = _brute_force_semantic(image, text, text_ids, relevance, k=3)
    assert got == pytest.approx(want)


def test_semantic_ndcg_excludes_query_image_hand_case():
    # Two images, one caption each; i2i: the only other image has relevance (0.5+0)/1.
    image = np.eye(2)
    relevance = np.array([[1.0, 0.5], [0.0, 1.0]])
    got = metrics.semantic_ndcg(image, [0, 1], np.eye(2), [0, 1], relevance,
                                metrics.NdcgOptions(k=25))
    assert got["i2i_ndcg"] == pytest.approx(0.5)  # image 1's only candidate has relevance 0
    assert got["t2t_ndcg"] == pytest.approx(0.5)
    assert got["t2i_ndcg"] == pytest.approx(1.0)


def test_image_relevance_is_mean_of_caption_rows():
    relevance = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    got = metrics.image_relevance(relevance, np.array([0, 0, 1]))
    np.testing.assert_allclose(got, [[0.75, 0.25], [0.0, 1.0]])
