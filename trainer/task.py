"""The TFX Trainer entry point ``run_fn`` (``Trainer(run_fn="trainer.task.run_fn")``)."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from trainer import features, preprocessing
from trainer.config import TrainerConfig
from trainer.inputs import data as data_lib
from trainer.inputs import stream_input
from trainer.model import export, towers
from trainer.train import distribute, host_speed, training
from trainer.train import warm_start as warm_start_lib

VERTEX_EXTENSION_PREFIX = "ai_platform_"


def assert_legacy_keras() -> None:
    """Fails unless TensorFlow runs with legacy Keras 2 (``tf_keras``), the project's choice.

    Raises:
        RuntimeError: ``TF_USE_LEGACY_KERAS`` is not "1" or ``tf.keras`` is not ``tf_keras``.

    """
    legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    if not legacy or not tf.keras.__name__.startswith("tf_keras"):
        raise RuntimeError(
            "the trainer needs legacy Keras 2: set TF_USE_LEGACY_KERAS=1 before TensorFlow is "
            f"imported (import the trainer package first); tf.keras is {tf.keras.__name__}")


def warm_start(image_tower: keras.Model, text_tower: keras.Model, saved_model_dir: str) -> None:
    """Loads tower weights from a previously exported model (same architecture required).

    Says so on stdout as well as in the log: a pipeline's TFX log file keeps only absl's
    logger, and a retrain's output should name the model it started from.

    Raises:
        ValueError: the previous model's towers do not match the configured ones.

    """
    path = os.path.join(saved_model_dir, "variables", "variables")
    checkpoint = tf.train.Checkpoint(image_tower=image_tower, text_tower=text_tower)
    try:
        checkpoint.read(path).assert_existing_objects_matched().expect_partial()
    except (AssertionError, ValueError) as error:
        raise ValueError(f"cannot warm-start from {saved_model_dir}: its towers differ from "
                         f"the configured ones ({error})") from error
    message = f"warm-started the towers from {saved_model_dir}"
    print(message, flush=True)
    logging.info(message)


def _build(config: TrainerConfig, tf_transform_output: tft.TFTransformOutput, split):
    caption_dim = None
    if features.CAPTION_FEATURES_XF in split.text:
        caption_dim = split.text[features.CAPTION_FEATURES_XF].shape[-1]
    vocab_size = 0
    if features.CAPTION_TOKENS_XF in split.text:
        vocab_size = preprocessing.token_vocab_size(tf_transform_output)
    return towers.build_towers(config, vocab_size, split.image_features.shape[-1],
                               caption_dim)


def _warm_start_across_spans(config: TrainerConfig, tf_transform_output, split,
                             image_tower, text_tower, base_model: str) -> None:
    """Warm start that survives a changed caption vocabulary (a new span)."""
    new_vocab = None
    if features.CAPTION_TOKENS_XF in split.text:
        new_vocab = warm_start_lib.read_vocabulary(
            tf_transform_output.vocabulary_file_by_name(preprocessing.VOCAB_NAME))
    caption_dim = None
    if features.CAPTION_FEATURES_XF in split.text:
        caption_dim = split.text[features.CAPTION_FEATURES_XF].shape[-1]

    def build(vocab_size: int):
        return towers.build_towers(config, vocab_size, split.image_features.shape[-1],
                                   caption_dim)

    warm_start_lib.warm_start_towers(image_tower, text_tower, base_model, new_vocab, build,
                                     warm_start)


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What ``train_and_export`` reads: the Transform's output and the transformed splits.

    Attributes:
        transform_output: Transform output (feature spec, vocabulary, Transform graph).
        train_files: glob pattern(s) of the transformed train split.
        eval_files: glob pattern(s) of the transformed eval split.

    """

    transform_output: tft.TFTransformOutput
    train_files: Any
    eval_files: Any


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How one training run goes, beyond its hyperparameters.

    Attributes:
        base_model: previous SavedModel to warm-start from, or None.
        max_steps: optional cap on optimizer steps.
        verbose: progress-bar verbosity.

    """

    base_model: str | None = None
    max_steps: int | None = None
    verbose: int = 1


def train_and_export(config: TrainerConfig, data: TrainingData, work_dir: str, export_dir: str,
                     options: RunOptions | None = None) -> training.TrainResult:
    """Reads the transformed splits, trains (optionally warm-started) and exports.

    Under ``TF_CONFIG`` every worker trains (``trainer.train.distribute``); only the chief keeps its
    logs, checkpoints and SavedModel, the others write theirs to temporary folders. A caller that
    runs TensorFlow ops before it calls ``distribute.strategy_for`` first.

    Args:
        config: the trainer hyperparameters.
        data: the Transform output and the transformed splits.
        work_dir: logs and checkpoints (``fn_args.model_run_dir``).
        export_dir: SavedModel destination (``fn_args.serving_model_dir``).
        options: warm start, step cap and verbosity (None: ``RunOptions()``).

    Returns:
        The ``TrainResult`` (eval metrics of the exported towers).

    """
    strategy = distribute.strategy_for(config)
    distribute.check_same_config(strategy, config)
    chief = distribute.is_chief(distribute.tf_config())
    with (strategy.scope(), distribute.worker_dir(work_dir, chief) as work_dir,
          distribute.worker_dir(export_dir, chief) as export_dir):
        return _train_and_export(config, data, (work_dir, export_dir), options or RunOptions())


def _train_and_export(config: TrainerConfig, data: TrainingData, dirs: tuple[str, str],
                      options: RunOptions) -> training.TrainResult:
    """``train_and_export`` inside the strategy's scope, with this worker's (work, export) dirs."""
    work_dir, export_dir = dirs
    tf_transform_output = data.transform_output
    text_keys = towers.text_inputs(config)
    train_split = stream_input.training_input(config, data.train_files, tf_transform_output,
                                              text_keys)
    eval_split = data_lib.load_split(data.eval_files, tf_transform_output, text_keys)
    training.set_seeds(config.seed)
    # The towers' input sizes are read from the eval tables: they are in memory in both input
    # modes and come from the same Transform as the training split.
    image_tower, text_tower = _build(config, tf_transform_output, eval_split)
    if config.warm_start and options.base_model:
        _warm_start_across_spans(config, tf_transform_output, eval_split, image_tower,
                                 text_tower, options.base_model)
    result = training.train(config, (image_tower, text_tower),
                            training.Splits(train_split, eval_split), work_dir,
                            max_steps=options.max_steps, verbose=options.verbose)
    logging.info("best eval (epoch %d): %s", result.best_epoch, result.best_metrics)
    text_raw_key = (features.CAPTION_FEATURES_KEY if config.text_tower == "linear"
                    else features.CAPTION_KEY)
    export.export_model(image_tower, text_tower, tf_transform_output, text_raw_key, export_dir,
                        image_backbone=config.image_backbone)
    return result


def trainer_settings(custom_config: dict | None) -> dict:
    """The ``TrainerConfig`` fields of the Trainer's ``custom_config``.

    TFX's Vertex AI Trainer extension keeps its own entries (``ai_platform_*``: region, job
    spec) in the same ``custom_config`` that reaches ``run_fn``; they are not ours.
    """
    return {key: value for key, value in (custom_config or {}).items()
            if not key.startswith(VERTEX_EXTENSION_PREFIX)}


# TFX Trainer will call this function.
def run_fn(fn_args) -> None:
    """Trains the towers and exports the serving SavedModel.

    Args:
        fn_args: ``tfx.components.FnArgs``: ``custom_config`` (``TrainerConfig`` fields),
            ``transform_output``, ``train_files``, ``eval_files``, ``model_run_dir``,
            ``serving_model_dir``, ``base_model`` (None or a previous serving model dir) and
            ``train_steps`` (None/0 = the configured epochs).

    """
    assert_legacy_keras()
    config = TrainerConfig.from_dict(trainer_settings(fn_args.custom_config))
    # Strategy first: the host probe runs TensorFlow ops, after which a cluster's strategy
    # can no longer be built; train_and_export gets the same strategy back.
    distribute.strategy_for(config)
    rate = host_speed.matmul_rate()
    setting = host_speed.describe_setting(config, rate.cores)
    print(f"{setting}\n  {rate.describe()}", flush=True)
    logging.info("%s; %s", setting, rate.describe())
    data = TrainingData(tft.TFTransformOutput(fn_args.transform_output), fn_args.train_files,
                        fn_args.eval_files)
    train_and_export(config, data, fn_args.model_run_dir, fn_args.serving_model_dir,
                     RunOptions(base_model=getattr(fn_args, "base_model", None),
                                max_steps=getattr(fn_args, "train_steps", None) or None,
                                verbose=2))
