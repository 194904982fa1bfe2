"""The Trainer-only benchmark lays its settings over the pipeline's default model and Transform."""

import re

from benchmarks import train_quality


def test_the_default_model_is_the_minilm_tower_over_its_wordpiece_transform():
    # only what differs from the classes' defaults, which are the pipeline's default model
    assert train_quality.sections({}) == ({}, {})
    transform, trainer = train_quality.sections({"minilm_trainable_layers": 0})
    assert transform == {}
    assert trainer == {"minilm_trainable_layers": 0}


def test_a_token_tower_gets_no_wordpiece_ids():
    transform, trainer = train_quality.sections({"text_tower": "mean", "epochs": 3})
    assert transform == {"wordpiece_max_tokens": None}
    assert trainer == {"text_tower": "mean", "epochs": 3}


def test_each_transform_configuration_has_its_own_cache():
    default = train_quality.cache_name(False, {})
    assert re.fullmatch(r"transformed-[0-9a-f]{12}", default)
    assert re.fullmatch(r"transformed_quick-[0-9a-f]{12}", train_quality.cache_name(True, {}))
    # Keyed by the effective settings: the defaults spelled out name the same folder...
    assert train_quality.cache_name(False, {"wordpiece_max_tokens": 64}) == default
    # ...and any setting that changes the output names another.
    names = {train_quality.cache_name(False, config) for config in (
        {}, {"wordpiece_max_tokens": None}, {"max_tokens": 20}, {"wordpiece_max_tokens": 32})}
    assert len(names) == 4


def test_the_speed_benchmarks_time_the_token_tower_over_a_transform_without_wordpiece():
    overrides = train_quality.token_tower_overrides(["epochs=2"])
    assert overrides == {"text_tower": "mean", "epochs": 2}
    assert train_quality.token_tower_overrides(["text_tower=gru"])["text_tower"] == "gru"
    transform, _ = train_quality.sections(overrides)
    assert transform == {"wordpiece_max_tokens": None}
