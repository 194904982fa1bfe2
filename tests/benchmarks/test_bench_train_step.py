"""bench_train_step: FLOPs counted from the shapes, and each precision's roof."""

import numpy as np
import pytest

from benchmarks import bench_train_step, train_step_flops
from trainer.config import TrainerConfig

CONFIG = TrainerConfig(text_tower="minilm", minilm_trainable_layers=1, embedding_dim=1024)


def test_layer_flops_count_padding_only_when_padded():
    lengths = np.array([10, 30])  # 40 real tokens, 60 padded rows, longest 30
    h, i = 384, 1536
    attention = 4.0 * 2 * 30 * 30 * h
    for rows, padded in ((40, False), (60, True)):
        qkv, rest = 2.0 * rows * h * 3 * h, 2.0 * rows * h * (h + 2 * i)
        expected = 3 * (qkv + rest + attention) - qkv  # no input gradient into the cache
        assert train_step_flops.layer_flops(CONFIG, lengths, padded) == expected
    two = TrainerConfig(text_tower="minilm", minilm_trainable_layers=2)
    one = train_step_flops.layer_flops(CONFIG, lengths, False)
    qkv = 2.0 * 40 * h * 3 * h
    assert train_step_flops.layer_flops(two, lengths, False) == 2 * one + qkv


def test_step_flops_add_projection_image_tower_and_mining():
    lengths = np.array([10, 30])
    extra = 3 * 2.0 * 2 * 384 * 1024 + 2 * 2.0 * 2 * 1280 * 1024 + 2.0 * 2 * 2 * 1024
    assert train_step_flops.step_flops(CONFIG, lengths, False) == pytest.approx(
        train_step_flops.layer_flops(CONFIG, lengths, False) + extra)
    assert train_step_flops.padding_share(lengths) == pytest.approx(1 / 3)


def test_each_precision_roof_is_its_fastest_square():
    def roof(name: str, seconds: float) -> bench_train_step.Timed:
        return bench_train_step.Timed(name, name.split()[1], lambda batch: None, 1e9,
                                      [seconds])
    variants = [roof("roof float32 1024", 0.02), roof("roof float32 4096", 0.01),
                roof("roof bfloat16 1024", 0.005), roof("roof bfloat16 4096", 0.02),
                bench_train_step.Timed("step, flat float32", "float32", lambda b: None,
                                       1e12, [0.001])]
    assert bench_train_step.roofs(variants) == {"float32": pytest.approx(100.0),
                                                "bfloat16": pytest.approx(200.0)}
