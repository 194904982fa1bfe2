"""The Trainer-only benchmark runs the pipeline's default model when asked to, on its Transform."""

from benchmarks import train_quality


def test_pipeline_defaults_bring_the_minilm_tower_and_its_wordpiece_transform():
    transform, trainer = train_quality.sections("pipeline", {"minilm_trainable_layers": 0})
    assert transform == {"wordpiece_max_tokens": 64}
    # the fields that differ from TrainerConfig's defaults, of which 0 trainable layers is one
    assert trainer == {"text_tower": "minilm"}


def test_a_token_tower_over_the_pipeline_defaults_needs_no_wordpiece():
    transform, trainer = train_quality.sections("pipeline", {"text_tower": "mean", "epochs": 3})
    assert transform == {}
    assert trainer == {"minilm_trainable_layers": 1, "epochs": 3}  # "mean" is the default


def test_trainer_defaults_keep_the_overrides_as_they_are():
    assert train_quality.sections("trainer", {"epochs": 2}) == ({}, {"epochs": 2})


def test_each_transform_configuration_has_its_own_cache():
    assert train_quality.cache_name(False, {}) == "transformed"
    assert train_quality.cache_name(True, {}) == "transformed_quick"
    assert (train_quality.cache_name(False, {"wordpiece_max_tokens": 64, "max_tokens": 20})
            == "transformed-max_tokens=20-wordpiece_max_tokens=64")
