"""The fine-tuning benchmark states its step time as a Trainer's epoch lines report it."""

import pytest

from benchmarks import bench_minilm_finetune


def test_the_first_epoch_line_spreads_the_traced_step_over_the_epoch():
    # (10 s + 233 x 0.2 s) / 234 steps = 56.6 / 234
    first, later = bench_minilm_finetune.epoch_line_seconds(10.0, 0.2, 234)
    assert first == pytest.approx(56.6 / 234)
    assert later == 0.2


def test_an_epoch_of_one_step_is_the_traced_step():
    assert bench_minilm_finetune.epoch_line_seconds(3.0, 0.5, 1) == (3.0, 0.5)
