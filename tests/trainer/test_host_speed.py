import pytest

from trainer.config import TrainerConfig
from trainer.train import host_speed

FINE_TUNED = TrainerConfig(text_tower="minilm", minilm_trainable_layers=1)


@pytest.mark.parametrize("gflops", [33.0, 149.9, 150.0, 320.0])
def test_the_setting_line_names_the_configured_tower_whatever_the_rate(gflops):
    assert host_speed.describe_setting(FINE_TUNED, gflops) == (
        f"host: {gflops:.0f} GFLOP/s; text tower MiniLM with the top 1 layer(s) fine-tuned, "
        "as configured")


def test_the_setting_line_names_frozen_and_token_towers():
    frozen = TrainerConfig(text_tower="minilm", minilm_trainable_layers=0)
    assert host_speed.describe_setting(frozen, 44.0) == (
        "host: 44 GFLOP/s; text tower MiniLM, frozen encoder, as configured")
    assert host_speed.describe_setting(TrainerConfig(text_tower="mean"), 44.0) == (
        "host: 44 GFLOP/s; text tower 'mean', as configured")


def test_no_configuration_field_hands_the_tower_to_the_host():
    with pytest.raises(ValueError, match=r"unknown TrainerConfig keys \['slow_host_fallback'\]"):
        TrainerConfig.from_dict({"slow_host_fallback": True})


def test_the_probe_measures_positive_rates_and_names_them():
    # A 256² matmul: 33.5 MFLOP, so any working CPU gives a rate well above 0.01 GFLOP/s.
    rate = host_speed.matmul_rate(size=256, repeats=2)
    assert rate.cores > 0.01 and rate.wall > 0.01
    assert host_speed.MatmulRate(cores=320.4, wall=171.0).describe().startswith(
        "float32 4096² matmul 320 GFLOP/s on the cores' time (171 wall-clock, load ")
