import pytest

from trainer.config import TrainerConfig
from trainer.train import host_speed

FINE_TUNED = TrainerConfig(text_tower="minilm", minilm_trainable_layers=1)


def test_a_fast_host_keeps_the_fine_tuned_tower():
    config, message = host_speed.setting_for_host(FINE_TUNED, 320.0)
    assert config == FINE_TUNED
    assert "320 GFLOP/s (>= 150)" in message and "fine-tuned, as configured" in message


@pytest.mark.parametrize("gflops", [44.0, 149.9])
def test_a_slow_host_trains_the_frozen_encoder_and_says_why(gflops):
    config, message = host_speed.setting_for_host(FINE_TUNED, gflops)
    assert config.minilm_trainable_layers == 0
    assert config == TrainerConfig(text_tower="minilm", minilm_trainable_layers=0)
    assert f"{gflops:.0f} GFLOP/s (< 150): frozen MiniLM encoder" in message
    assert "slow_host_fallback=false" in message


def test_the_threshold_itself_counts_as_fast():
    config, _ = host_speed.setting_for_host(FINE_TUNED, host_speed.SLOW_HOST_GFLOPS)
    assert config.minilm_trainable_layers == 1


def test_the_fallback_can_be_turned_off():
    keep = TrainerConfig(text_tower="minilm", minilm_trainable_layers=2, slow_host_fallback=False)
    config, message = host_speed.setting_for_host(keep, 44.0)
    assert config == keep
    assert "slow_host_fallback is off" in message


@pytest.mark.parametrize("config", [TrainerConfig(text_tower="mean"),
                                    TrainerConfig(text_tower="minilm")])
def test_towers_without_fine_tuning_are_left_alone_on_a_slow_host(config):
    assert host_speed.setting_for_host(config, 10.0)[0] == config


def test_the_probe_measures_positive_rates_and_names_them():
    # A 256² matmul: 33.5 MFLOP, so any working CPU gives a rate well above 0.01 GFLOP/s.
    rate = host_speed.matmul_rate(size=256, repeats=2)
    assert rate.cores > 0.01 and rate.wall > 0.01
    assert host_speed.MatmulRate(cores=320.4, wall=171.0).describe().startswith(
        "float32 4096² matmul 320 GFLOP/s on the cores' time (171 wall-clock, load ")
