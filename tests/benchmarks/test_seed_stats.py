"""Table arithmetic of the paper table: means, sample stds, paired differences, cells."""

import math

import pytest

from benchmarks import seed_stats


def _runs():
    """hn rsum 100/110/120, fhn 130/125/150 over seeds 0-2 (hand-checked below)."""
    values = {"hn": (100.0, 110.0, 120.0), "fhn": (130.0, 125.0, 150.0)}
    return [{"loss": loss, "mining": "in_batch", "seed": seed, "best_epoch": seed + 1,
             "test": {"rsum": rsums[seed], "t2i_ndcg": 0.5 + 0.1 * seed}}
            for loss, rsums in values.items() for seed in range(3)]


def test_mean_std_is_the_sample_std():
    mean, std = seed_stats.mean_std([2.0, 4.0, 9.0])
    assert mean == pytest.approx(5.0)
    assert std == pytest.approx(math.sqrt((9 + 1 + 16) / 2))  # ddof = 1


def test_mean_std_of_one_value_has_no_spread():
    mean, std = seed_stats.mean_std([3.5])
    assert mean == 3.5 and math.isnan(std)
    with pytest.raises(ValueError):
        seed_stats.mean_std([])


def test_summarize_by_hand():
    summary = seed_stats.summarize(_runs())
    assert list(summary) == ["hn/in_batch", "fhn/in_batch"]
    assert summary["hn/in_batch"]["metrics"]["rsum"] == pytest.approx([110.0, 10.0])
    assert summary["fhn/in_batch"]["metrics"]["rsum"] == pytest.approx([135.0, math.sqrt(175)])
    assert summary["fhn/in_batch"]["metrics"]["t2i_ndcg"] == pytest.approx([0.6, 0.1])
    assert summary["hn/in_batch"]["best_epochs"] == [1, 2, 3]


def test_paired_difference_by_hand():
    difference = seed_stats.paired_difference(_runs(), "fhn", "hn", "in_batch")
    # per seed: 30, 15, 30 -> mean 25, deviations 5, -10, 5 -> std sqrt(150 / 2)
    assert difference["rsum"] == pytest.approx([25.0, math.sqrt(75)])
    assert difference["t2i_ndcg"] == pytest.approx([0.0, 0.0])
    assert seed_stats.paired_difference(_runs(), "fhn", "hn", "global") is None


def test_paired_difference_needs_the_same_seeds():
    runs = _runs()[:-1]  # fhn lacks seed 2
    with pytest.raises(ValueError, match="seeds"):
        seed_stats.paired_difference(runs, "fhn", "hn", "in_batch")


def test_markdown_table_cells():
    rows = {"hn/in_batch": {"rsum": [110.0, 10.0]},
            "fhn − hn / in_batch": {"rsum": [25.0, math.sqrt(75)], "t2i_ndcg": [-0.01, math.nan]}}
    table = seed_stats.markdown_table(rows, signed=["fhn − hn / in_batch"]).splitlines()
    assert table[0] == "| loss / mining | rsum | t2i nDCG@25 |"
    assert table[2] == "| hn/in_batch | 110.0 ± 10.0 |  |"
    assert table[3] == "| fhn − hn / in_batch | +25.0 ± 8.7 | -0.010 ± – |"
