"""The effective Transform and Trainer settings of a pipeline run, built once.

``pipeline.config.from_dict`` calls ``component_configs`` once per configuration: the configured
``transform`` and ``trainer`` sections laid over the class defaults of ``TransformConfig`` and
``TrainerConfig`` (the one place those defaults live: the classes' defaults are the pipeline's
default model), parsed into those typed objects. The result is ``PipelineConfig.transform`` /
``trainer``; the Transform and the Trainer receive its fields as their ``custom_config`` and
nothing recomputes them. Nothing here imports TensorFlow: the check for the pretrained files
runs before any heavy import.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from pipeline.config_checks import ConfigError, dotted_key, reject_unknown
from trainer.config import TrainerConfig
from trainer.model import pretrained
from trainer.tokens.transform_config import TransformConfig

# The token tower that a default run trains when the pretrained MiniLM files are missing.
FALLBACK_TEXT_TOWER = "mean"
# Where the component config classes name a field in their messages ("TrainerConfig.margin=...").
_FIELD_IN_MESSAGE = re.compile(r"(?:Trainer|Transform)Config\.(\w+)")


@dataclasses.dataclass(frozen=True)
class ComponentConfigs:
    """The effective settings of the Transform and the Trainer of one configuration.

    Attributes:
      transform: the Transform's settings.
      trainer: the Trainer's settings.
      note: what was chosen in place of the configuration, for the run's output; None if nothing.

    """

    transform: TransformConfig
    trainer: TrainerConfig
    note: str | None = None


def component_configs(
    transform: Mapping[str, Any], trainer: Mapping[str, Any], source: str = "configuration",
    pretrained_dir: str | None = None,
) -> ComponentConfigs:
    """The configured sections over the classes' defaults, parsed and checked together.

    Two settings are derived, not defaulted: a text tower other than ``minilm`` gets no
    WordPiece ids unless the ``transform`` section sets ``wordpiece_max_tokens`` (they would
    cost the Transform time for nothing); and when the pretrained files are missing, the
    default ``minilm`` tower becomes ``FALLBACK_TEXT_TOWER`` (and the note says why), while an
    explicitly configured ``minilm`` tower is an error.

    Args:
      transform: the ``transform`` section as configured.
      trainer: the ``trainer`` section as configured.
      source: where the sections came from, for error messages.
      pretrained_dir: the MiniLM model directory to check; None is the installed package's.

    Raises:
      ConfigError: an unknown key or a bad value (named by its dotted key), or an explicit
        ``minilm`` tower without its files or without WordPiece ids.

    """
    reject_unknown(transform, TransformConfig, source, "transform")
    reject_unknown(trainer, TrainerConfig, source, "trainer")
    trainer, transform = dict(trainer), dict(transform)
    note = None
    tower = trainer.get("text_tower", TrainerConfig.text_tower)
    if tower == "minilm":
        reason = pretrained.missing(pretrained_dir)
        if reason and "text_tower" in trainer:
            raise ConfigError(source, "trainer.text_tower", f"minilm: {reason}")
        if reason:
            tower = trainer["text_tower"] = FALLBACK_TEXT_TOWER
            note = (f"text tower: {reason}; training the {FALLBACK_TEXT_TOWER!r} token tower "
                    f"instead of the default pretrained 'minilm' (pip install "
                    f"{pretrained.PIP_NAME} for it)")
    if tower != "minilm":
        transform.setdefault("wordpiece_max_tokens", None)
    configs = ComponentConfigs(_parse(TransformConfig, transform, "transform", source),
                               _parse(TrainerConfig, trainer, "trainer", source), note)
    if configs.trainer.text_tower == "minilm" and not configs.transform.wordpiece_max_tokens:
        raise ConfigError(source, "trainer.text_tower", "minilm reads WordPiece ids: set "
                          "transform.wordpiece_max_tokens (e.g. 64)")
    return configs


def custom_config(settings: TransformConfig | TrainerConfig) -> dict[str, Any]:
    """A component's ``custom_config``: the fields of ``settings`` that differ from the defaults.

    ``type(settings).from_dict`` of it gives ``settings`` back. A default left out is the class
    default where the component runs: the image backbone's path is resolved in its container,
    not on the machine that compiled the pipeline.
    """
    default = type(settings)()
    return {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)
            if getattr(settings, field.name) != getattr(default, field.name)}


def _parse(cls: type, values: Mapping[str, Any], section: str, source: str) -> Any:
    """``cls.from_dict(values)``; a bad value is a ConfigError naming ``section.field``."""
    try:
        return cls.from_dict(values)
    except (ValueError, TypeError) as err:
        field = _FIELD_IN_MESSAGE.search(str(err))
        raise ConfigError(source, dotted_key(section, field.group(1) if field else ""),
                          str(err)) from err
