import dataclasses

import pytest

from pipeline import config as config_lib
from pipeline import defaults
from trainer.config import TrainerConfig
from trainer.model import pretrained
from trainer.tokens.transform_config import TransformConfig


def test_the_default_run_trains_the_fine_tuned_minilm_tower_on_wordpiece_ids():
    sections = defaults.component_configs({}, {})
    assert sections.trainer == TrainerConfig(text_tower="minilm", minilm_trainable_layers=1)
    assert sections.transform == TransformConfig(wordpiece_max_tokens=64)
    assert sections.note is None


def test_a_configuration_that_sets_nothing_is_the_default_run():
    config = config_lib.PipelineConfig()
    assert config.trainer == defaults.component_configs({}, {}).trainer
    assert config.transform == TransformConfig(wordpiece_max_tokens=64)
    assert config == config_lib.from_dict({})


def test_configured_keys_override_the_defaults_one_by_one():
    sections = defaults.component_configs({"max_tokens": 20}, {"minilm_trainable_layers": 0,
                                                               "epochs": 3})
    assert sections.trainer == TrainerConfig(text_tower="minilm", minilm_trainable_layers=0,
                                             epochs=3)
    assert sections.transform == TransformConfig(max_tokens=20, wordpiece_max_tokens=64)


def test_a_token_tower_gets_no_wordpiece_features():
    sections = defaults.component_configs({}, {"text_tower": "gru"})
    assert sections.trainer.text_tower == "gru"
    assert sections.transform.wordpiece_max_tokens is None


def test_an_override_of_the_tower_recomputes_the_transform_defaults():
    config = config_lib.apply_overrides(config_lib.PipelineConfig(), ["trainer.text_tower=gru"])
    assert config.transform.wordpiece_max_tokens is None
    back = config_lib.apply_overrides(config, ["trainer.text_tower=minilm"])
    assert back.transform.wordpiece_max_tokens == 64


def test_missing_weights_fall_back_to_the_mean_tower_and_say_so(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n", encoding="utf-8")
    sections = defaults.component_configs({}, {"epochs": 2}, pretrained_dir=str(tmp_path))
    assert sections.trainer.text_tower == "mean"
    assert sections.trainer.epochs == 2
    assert sections.transform.wordpiece_max_tokens is None
    assert "['config.json', 'model.safetensors'] not found in " + str(tmp_path) in sections.note
    assert "'mean' token tower instead of the default pretrained 'minilm'" in sections.note


def test_the_fallback_note_is_carried_on_the_configuration_through_overrides(monkeypatch,
                                                                              tmp_path):
    monkeypatch.setattr(pretrained, "missing", lambda model_dir=None: "files not found")
    config = config_lib.apply_overrides(config_lib.from_dict({}), ["trainer.margin=0.3"])
    assert (config.trainer.text_tower, config.trainer.margin) == ("mean", 0.3)
    assert config.note.startswith("text tower: files not found; training the 'mean' token tower")
    with pytest.raises(config_lib.ConfigError, match="note: derived from the transform"):
        config_lib.apply_overrides(config, ["note=x"])


def test_an_explicit_minilm_tower_without_weights_is_an_error(tmp_path):
    with pytest.raises(config_lib.ConfigError, match=r"cli: trainer.text_tower: minilm: "
                       r"pretrained MiniLM files .* not found"):
        defaults.component_configs({}, {"text_tower": "minilm"}, "cli", str(tmp_path))


def test_the_installed_package_has_every_file():
    assert pretrained.missing() is None


def test_an_explicit_wordpiece_length_is_kept_and_none_is_refused():
    assert defaults.component_configs({"wordpiece_max_tokens": 32}, {}).transform == (
        TransformConfig(wordpiece_max_tokens=32))
    with pytest.raises(config_lib.ConfigError, match="transform.wordpiece_max_tokens"):
        config_lib.from_dict({"transform": {"wordpiece_max_tokens": None}})


def test_validation_checks_the_defaults_with_the_overrides():
    with pytest.raises(config_lib.ConfigError, match=r"trainer.minilm_trainable_layers"):
        config_lib.from_dict({"trainer": {"minilm_trainable_layers": 7}})


def test_custom_config_holds_what_differs_from_the_defaults_and_gives_it_back():
    trainer = TrainerConfig(text_tower="mean", minilm_trainable_layers=0, margin=0.3)
    assert defaults.custom_config(trainer) == {"text_tower": "mean",
                                               "minilm_trainable_layers": 0, "margin": 0.3}
    assert TrainerConfig.from_dict(defaults.custom_config(trainer)) == trainer
    assert defaults.custom_config(TransformConfig()) == {}
    assert "image_backbone" not in defaults.custom_config(
        dataclasses.replace(trainer, image_backbone=TrainerConfig().image_backbone))
