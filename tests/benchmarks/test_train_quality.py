"""The Trainer-only benchmark lays its settings over the pipeline's default model and Transform."""

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
    assert train_quality.cache_name(False, {}) == "transformed"
    assert train_quality.cache_name(True, {}) == "transformed_quick"
    assert (train_quality.cache_name(False, {"wordpiece_max_tokens": 64, "max_tokens": 20})
            == "transformed-max_tokens=20-wordpiece_max_tokens=64")
