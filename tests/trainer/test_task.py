"""TrainerConfig validation, the legacy-Keras check, run_fn end to end and warm start."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer import features, preprocessing, task
from trainer.config import TrainerConfig
from trainer.model import towers
from trainer.train import host_speed

TINY = {"text_tower": "mean", "embedding_dim": 8, "word_dim": 4, "batch_size": 8, "epochs": 1}


def test_config_from_dict_validates_names_types_and_ranges():
    cfg = TrainerConfig.from_dict({"loss": "hn", "margin": 1, "clip_norm": None})
    assert (cfg.loss, cfg.margin, cfg.clip_norm, cfg.intra_margin) == ("hn", 1.0, None, 0.4)
    assert TrainerConfig.from_dict(None) == TrainerConfig()
    assert TrainerConfig(epochs=10).decay_epoch == 5
    with pytest.raises(ValueError, match=r"unknown TrainerConfig keys \['lr'\]"):
        TrainerConfig.from_dict({"lr": 1e-3})
    with pytest.raises(ValueError, match="TrainerConfig.epochs='3'"):
        TrainerConfig.from_dict({"epochs": "3"})
    with pytest.raises(ValueError, match="TrainerConfig.epochs=True"):
        TrainerConfig.from_dict({"epochs": True})
    with pytest.raises(ValueError, match="TrainerConfig.mining='hard'"):
        TrainerConfig.from_dict({"mining": "hard"})
    with pytest.raises(ValueError, match="TrainerConfig.batch_size=0"):
        TrainerConfig.from_dict({"batch_size": 0})
    assert TrainerConfig().minilm_lr_multiplier == 0.1
    with pytest.raises(ValueError, match="TrainerConfig.minilm_lr_multiplier=0.0: must be > 0"):
        TrainerConfig.from_dict({"minilm_lr_multiplier": 0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainerConfig().loss = "hn"


def test_legacy_keras_is_asserted(monkeypatch):
    task.assert_legacy_keras()
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "0")
    with pytest.raises(RuntimeError, match="legacy Keras"):
        task.assert_legacy_keras()


def _fn_args(transformed, tmp_path, name, base_model=None, **config):  # noqa: F811
    return FnArgs(
        train_files=[transformed.train_pattern], eval_files=[transformed.eval_pattern],
        transform_output=transformed.transform_output,
        serving_model_dir=str(tmp_path / name / "serving"),
        model_run_dir=str(tmp_path / name / "run"), base_model=base_model,
        custom_config={**TINY, **config}, train_steps=None)


@pytest.mark.usefixtures("shipped_image_backbone")
def test_run_fn_exports_and_a_later_run_warm_starts(transformed, tmp_path,  # noqa: F811
                                                    capsys):
    first = _fn_args(transformed, tmp_path, "first")
    task.run_fn(first)
    loaded = tf.saved_model.load(first.serving_model_dir)
    assert set(loaded.signatures) == {features.SERVING_DEFAULT_SIGNATURE,
                                      features.EMBED_TEXT_SIGNATURE,
                                      features.EMBED_IMAGE_SIGNATURE}
    out = loaded.signatures[features.EMBED_TEXT_SIGNATURE](
        caption=tf.constant(["a dog runs red"]))[features.TEXT_EMBEDDING_OUTPUT]
    assert out.shape == (1, 8)
    # warm start: fresh towers read the exported weights exactly
    cfg = TrainerConfig.from_dict(TINY)
    vocab_size = preprocessing.token_vocab_size(transformed.tf_transform_output())
    image_tower, text_tower = towers.build_towers(cfg, vocab_size, 8)
    assert "warm-started" not in capsys.readouterr().out
    task.warm_start(image_tower, text_tower, first.serving_model_dir)
    assert capsys.readouterr().out == f"warm-started the towers from {first.serving_model_dir}\n"
    for fresh, saved in zip(image_tower.variables + text_tower.variables,
                            loaded.image_tower.variables + loaded.text_tower.variables,
                            strict=True):
        np.testing.assert_array_equal(fresh.numpy(), saved.numpy())
    wider = towers.build_towers(TrainerConfig.from_dict({**TINY, "embedding_dim": 6}),
                                vocab_size, 8)
    with pytest.raises(ValueError, match="cannot warm-start"):
        task.warm_start(*wider, first.serving_model_dir)


def test_run_fn_rejects_bad_config(transformed, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="unknown TrainerConfig keys"):
        task.run_fn(_fn_args(transformed, tmp_path, "bad", nonsense=1))
    assert not os.path.exists(tmp_path / "bad" / "serving")


@pytest.mark.parametrize("gflops", [33.0, 320.0])
def test_one_configuration_trains_the_same_tower_on_slow_and_fast_hosts(gflops, monkeypatch,
                                                                        capsys):
    trained = []
    monkeypatch.setattr(task.host_speed, "matmul_rate",
                        lambda: host_speed.MatmulRate(cores=gflops, wall=gflops))
    monkeypatch.setattr(task.tft, "TFTransformOutput", lambda path: path)
    monkeypatch.setattr(task, "train_and_export",
                        lambda config, *args, **kwargs: trained.append(config))
    custom = {"text_tower": "minilm", "minilm_trainable_layers": 1}
    task.run_fn(FnArgs(custom_config=custom, transform_output="xf", train_files=["t"],
                       eval_files=["e"], model_run_dir="run", serving_model_dir="serving"))
    assert trained == [TrainerConfig(text_tower="minilm", minilm_trainable_layers=1)]
    assert capsys.readouterr().out.startswith(
        f"host: {gflops:.0f} GFLOP/s; text tower MiniLM with the top 1 layer(s) fine-tuned, "
        "as configured\n")
