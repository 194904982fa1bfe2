"""Pipeline configuration: one typed place, loaded from YAML/JSON and overridable from the CLI.

The sections ``transform`` and ``trainer`` are passed through unchanged as the ``custom_config`` of
the Transform and Trainer components; they are validated here (fail fast, before any component
runs) by the same dataclasses that the components use (``trainer.preprocessing.TransformConfig``,
``trainer.config.TrainerConfig``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

# Beam in-process by default: the multi-processing DirectRunner re-imports TF in every worker,
# which is slower on data of this size; pass --beam-args to scale out.
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Blessing thresholds for the Evaluator.

    Attributes:
      rsum_lower_bound: absolute lower bound on eval rsum (sum of the six recalls, 0..600).
      rsum_change_threshold: minimum rsum gain over the baseline (latest blessed model); a
        negative value tolerates that much regression.
      metric_bounds: optional extra absolute bounds, metric name -> {"lower": x, "upper": y},
        e.g. ``{"t2i_r1": {"lower": 10}, "t2i_medr": {"upper": 20}}``.

    """

    rsum_lower_bound: float = 30.0
    rsum_change_threshold: float = -1.0
    metric_bounds: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything a run of the pipeline needs; runners add nothing but their own plumbing.

    Attributes:
      pipeline_name: TFX pipeline name (also the MLMD context).
      data_dir: dataset folder; None means the embedded default (real Flickr8k in ../shared if
        present, else a generated synthetic dataset).
      dataset: explicit overrides of what layout detection finds (keys of the ExampleGen's
        ``DatasetSpec``, e.g. ``format``, ``captions``).
      images_dir: a folder of images to featurize in front of ExampleGen (instead of features).
      pipeline_root: where TFX writes artifacts.
      metadata_path: ML Metadata SQLite file; defaults to ``<pipeline_root>/metadata.db``.
      serving_dir: TF Serving model base directory that the Pusher writes to.
      model_name: TF Serving model name.
      enable_cache: reuse the outputs of components whose inputs did not change.
      beam_args: Beam pipeline arguments for every Beam-based component.
      transform: Transform ``custom_config`` (``TransformConfig`` fields).
      trainer: Trainer ``custom_config`` (``TrainerConfig`` fields).
      eval: blessing thresholds.

    """

    pipeline_name: str = "xmodal-retrieval"
    data_dir: str | None = None
    dataset: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    images_dir: str | None = None
    pipeline_root: str = "runs/tfx_root"
    metadata_path: str | None = None
    serving_dir: str = "runs/serving"
    model_name: str = "xmodal"
    enable_cache: bool = True
    beam_args: tuple[str, ...] = DEFAULT_BEAM_ARGS
    transform: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    trainer: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval: EvalSettings = dataclasses.field(default_factory=EvalSettings)

    @property
    def metadata_db(self) -> str:
        """The ML Metadata SQLite path."""
        return self.metadata_path or os.path.join(self.pipeline_root, "metadata.db")

    def validate(self) -> PipelineConfig:
        """Checks the component sections with the components' own config classes.

        Returns:
          self, for chaining.

        Raises:
          ValueError: naming the section and the offending key or value.

        """
        from trainer.config import TrainerConfig
        from trainer.preprocessing import TransformConfig

        parsed = {}
        for section, cls in (("transform", TransformConfig), ("trainer", TrainerConfig)):
            try:
                parsed[section] = cls.from_dict(dict(getattr(self, section)))
            except (ValueError, TypeError) as err:
                raise ValueError(f"config section '{section}': {err}") from err
        trainer, transform = parsed["trainer"], parsed["transform"]
        if trainer.text_tower == "minilm" and not transform.wordpiece_max_tokens:
            raise ValueError(
                "trainer.text_tower=minilm reads WordPiece ids: set transform.wordpiece_max_tokens "
                "(e.g. 64)"
            )
        return self


def from_dict(values: Mapping[str, Any], source: str = "<dict>") -> PipelineConfig:
    """Builds a PipelineConfig from plain values (as parsed from YAML/JSON).

    Args:
      values: mapping of PipelineConfig field names; ``eval`` may be a nested mapping.
      source: where the values came from, for error messages.

    Raises:
      ValueError: for unknown keys or values of the wrong type.

    """
    values = dict(values)
    _reject_unknown(values, PipelineConfig, source)
    if "eval" in values:
        eval_values = dict(values["eval"] or {})
        _reject_unknown(eval_values, EvalSettings, f"{source}: eval")
        values["eval"] = EvalSettings(**eval_values)
    if "beam_args" in values:
        if isinstance(values["beam_args"], str) or not isinstance(values["beam_args"], Sequence):
            raise ValueError(f"{source}: beam_args must be a list of strings")
        values["beam_args"] = tuple(values["beam_args"])
    for section in ("dataset", "transform", "trainer"):
        if not isinstance(values.get(section, {}), Mapping):
            raise ValueError(f"{source}: '{section}' must be a mapping")
    return PipelineConfig(**values)


def load(path: str | os.PathLike) -> PipelineConfig:
    """Loads a PipelineConfig from a .yaml/.yml/.json file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: top level must be a mapping of config fields")
    return from_dict(values, source=str(path))


def apply_overrides(config: PipelineConfig, overrides: Sequence[str]) -> PipelineConfig:
    """Applies ``section.key=value`` / ``key=value`` overrides (values parsed as YAML scalars).

    Examples: ``trainer.loss=fhn``, ``eval.rsum_lower_bound=50``, ``enable_cache=false``.
    """
    values = dataclasses.asdict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override '{item}' is not of the form key=value")
        value = yaml.safe_load(raw)
        *parents, leaf = key.split(".")
        target = values
        for part in parents:
            if part not in target or not isinstance(target[part], dict):
                raise ValueError(f"override '{item}': '{part}' is not a config section")
            target = target[part]
        target[leaf] = value
    return from_dict(values, source="--set overrides")


def _reject_unknown(values: Mapping[str, Any], cls: type, source: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown config keys {unknown}; known keys: {sorted(known)}")
