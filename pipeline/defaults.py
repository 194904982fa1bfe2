"""The pipeline's default model, and what the Transform and the Trainer run with.

``PipelineConfig.transform`` / ``trainer`` hold what a user configured; ``component_configs``
lays them over the defaults. Nothing here imports TensorFlow: the check for the pretrained
files runs before any heavy import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pipeline.config import ConfigError

# The pipeline's default model: the best that trains within its 15-minute budget on a 2-core
# CPU on Flickr8k (docs/minilm.md). ``trainer`` settings override these key by key.
DEFAULT_TRAINER: Mapping[str, Any] = {"text_tower": "minilm", "minilm_trainable_layers": 1}
# WordPiece length for a ``minilm`` tower when ``transform`` does not set it.
DEFAULT_WORDPIECE_TOKENS = 64
# The token tower that a default run trains when the pretrained MiniLM files are missing.
FALLBACK_TEXT_TOWER = "mean"


@dataclasses.dataclass(frozen=True)
class ComponentConfigs:
    """The ``custom_config`` of the Transform and the Trainer that a configuration runs with.

    Attributes:
      transform: ``TransformConfig`` fields.
      trainer: ``TrainerConfig`` fields.
      note: what was chosen in place of the configuration, for the run's output; None if nothing.

    """

    transform: dict[str, Any]
    trainer: dict[str, Any]
    note: str | None = None


def component_configs(
    transform: Mapping[str, Any], trainer: Mapping[str, Any], source: str = "configuration",
    pretrained_dir: str | None = None,
) -> ComponentConfigs:
    """The configured sections over the defaults, with the fallback for missing MiniLM files.

    A ``minilm`` tower gets ``wordpiece_max_tokens = DEFAULT_WORDPIECE_TOKENS`` unless the
    ``transform`` section sets it. When the pretrained files are missing, the default tower
    becomes ``FALLBACK_TEXT_TOWER`` (and the note says why); an explicitly configured ``minilm``
    tower is an error.

    Args:
      transform: the ``transform`` section as configured.
      trainer: the ``trainer`` section as configured.
      source: where the sections came from, for error messages.
      pretrained_dir: the MiniLM model directory to check; None is the installed package's.

    Raises:
      ConfigError: ``trainer.text_tower`` is ``minilm`` and its files are missing.

    """
    from trainer.model import pretrained

    merged = {**DEFAULT_TRAINER, **trainer}
    transform = dict(transform)
    note = None
    if merged["text_tower"] == "minilm":
        reason = pretrained.missing(pretrained_dir)
        if reason and "text_tower" in trainer:
            raise ConfigError(source, "trainer.text_tower", f"minilm: {reason}")
        if reason:
            merged["text_tower"] = FALLBACK_TEXT_TOWER
            note = (f"text tower: {reason}; training the {FALLBACK_TEXT_TOWER!r} token tower "
                    f"instead of the default pretrained 'minilm' (pip install "
                    f"{pretrained.PIP_NAME} for it)")
        else:
            transform.setdefault("wordpiece_max_tokens", DEFAULT_WORDPIECE_TOKENS)
    return ComponentConfigs(transform, merged, note)
