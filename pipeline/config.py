"""Pipeline configuration: one typed place, loaded from YAML/JSON and overridable from the CLI.

The sections ``transform`` and ``trainer`` are passed through unchanged as the ``custom_config`` of
the Transform and Trainer components; they are validated here, by the same dataclasses that the
components use (``trainer.transform_config.TransformConfig``, ``trainer.config.TrainerConfig``),
when the configuration is built. Nothing here imports TensorFlow or TFX, so a bad value is
reported (file and dotted key, as a ``ConfigError``) before any slow import or any write.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

# Beam in-process by default: the multi-processing DirectRunner re-imports TF in every worker,
# which is slower on data of this size; pass --beam-args to scale out.
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
# The keys of one ``eval.metric_bounds`` entry (as the Evaluator's EvalConfig reads them).
BOUND_KEYS = ("lower", "upper")
_STR_FIELDS = ("pipeline_name", "pipeline_root", "serving_dir", "model_name")
_OPTIONAL_STR_FIELDS = ("data_dir", "images_dir", "metadata_path")
_MAPPING_FIELDS = ("dataset", "transform", "trainer", "eval")
# The image featurizer's backends (components/image_featurizer/config.py: TFLITE, TF), named
# here because importing that package imports Beam, and configuration is checked before that.
IMAGE_BACKENDS = ("tflite", "tf")
# Where the component config classes name a field in their messages ("TrainerConfig.margin=...").
_FIELD_IN_MESSAGE = re.compile(r"(?:Trainer|Transform)Config\.(\w+)")


class ConfigError(ValueError):
    """A configuration value that cannot be used, named by its source and dotted key.

    Attributes:
      source: the config file (``path`` or ``path:line:column``) or the command line.
      key: the dotted key, e.g. ``eval.rsum_lower_bound``; empty for a whole-file problem.

    """

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


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
      images_backend: how ``images_dir`` is featurized: ``tflite`` (the quantized interpreter,
        the recipe of the shipped features) or ``tf`` (the float graph that the served
        ``embed_image_bytes`` runs, so training and serving features are the same numbers).
      pipeline_root: where TFX writes artifacts.
      metadata_path: ML Metadata SQLite file; defaults to ``<pipeline_root>/metadata.db``.
      serving_dir: TF Serving model base directory that the Pusher writes to.
      model_name: TF Serving model name.
      enable_cache: reuse the outputs of components whose inputs did not change.
      beam_args: Beam pipeline arguments for every Beam-based component.
      transform: Transform ``custom_config`` (``TransformConfig`` fields); a ``minilm`` text
        tower adds ``wordpiece_max_tokens`` when it is not set (``pipeline.defaults``).
      trainer: Trainer ``custom_config`` (``TrainerConfig`` fields), laid over
        ``pipeline.defaults.DEFAULT_TRAINER``.
      eval: blessing thresholds.

    """

    pipeline_name: str = "xmodal-retrieval"
    data_dir: str | None = None
    dataset: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    images_dir: str | None = None
    images_backend: str = "tflite"
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
        """Checks the whole configuration again (``from_dict`` already did for loaded ones).

        Returns:
          self, for chaining.

        Raises:
          ConfigError: naming the dotted key of the offending value.

        """
        from_dict(dataclasses.asdict(self), source="configuration")
        return self


def from_dict(values: Mapping[str, Any], source: str = "<dict>") -> PipelineConfig:
    """Builds and validates a PipelineConfig from plain values (as parsed from YAML/JSON).

    Args:
      values: mapping of PipelineConfig field names; ``eval`` may be a nested mapping.
      source: where the values came from, for error messages.

    Raises:
      ConfigError: for an unknown key or a bad value anywhere (top level, ``transform``,
        ``trainer``, ``eval``), naming ``source`` and the dotted key.

    """
    values = dict(values)
    _reject_unknown(values, PipelineConfig, source, "")
    _check_top_level(values, source)
    for section in _MAPPING_FIELDS:
        values[section] = dict(values.get(section) or {})
    _validate_sections(values, source)
    values["eval"] = _eval_settings(values["eval"], source)
    if "beam_args" in values:
        values["beam_args"] = tuple(values["beam_args"])
    return PipelineConfig(**values)


def load(path: str | os.PathLike) -> PipelineConfig:
    """Loads and validates a PipelineConfig from a .yaml/.yml/.json file.

    Raises:
      FileNotFoundError: no such file.
      ConfigError: a syntax error (with line and column) or a bad value (with its dotted key).

    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except UnicodeDecodeError as err:
        message = f"not UTF-8 text ({err.reason} at byte {err.start})"
        raise ConfigError(str(path), "", message) from err
    except json.JSONDecodeError as err:
        where = f"{path}:{err.lineno}:{err.colno}"
        raise ConfigError(where, "", f"invalid JSON: {err.msg}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or err
        raise ConfigError(where, "", f"invalid YAML: {problem}") from err
    if not isinstance(values, Mapping):
        raise ConfigError(str(path), "", "top level must be a mapping of config fields")
    return from_dict(values, source=str(path))


def apply_overrides(config: PipelineConfig, overrides: Sequence[str]) -> PipelineConfig:
    """Applies ``section.key=value`` / ``key=value`` overrides (values parsed as YAML scalars).

    Examples: ``trainer.loss=fhn``, ``eval.rsum_lower_bound=50``, ``enable_cache=false``.
    """
    values = dataclasses.asdict(config)
    source = "command line"
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(source, "", f"override '{item}' is not of the form key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(source, key, f"cannot parse {raw!r} as a YAML value: {err}") from err
        *parents, leaf = key.split(".")
        target = values
        for part in parents:
            if part not in target or not isinstance(target[part], dict):
                raise ConfigError(source, key, f"override '{item}': '{part}' is not a config "
                                  "section")
            target = target[part]
        target[leaf] = value
    return from_dict(values, source=source)


def _reject_unknown(values: Mapping[str, Any], cls: type, source: str, section: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        key = ", ".join(_dotted(section, name) for name in unknown)
        raise ConfigError(source, key, f"unknown config key; known keys: {sorted(known)}")


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _check_top_level(values: Mapping[str, Any], source: str) -> None:
    """Type checks of the top-level fields (the sections are checked by their own classes)."""
    for name in _STR_FIELDS:
        if name in values and (not isinstance(values[name], str) or not values[name]):
            raise ConfigError(source, name, f"must be a non-empty string, got {values[name]!r}")
    for name in _OPTIONAL_STR_FIELDS:
        if values.get(name) is not None and not isinstance(values[name], str):
            raise ConfigError(source, name, f"must be a string, got {values[name]!r}")
    if values.get("images_backend", "tflite") not in IMAGE_BACKENDS:
        raise ConfigError(source, "images_backend", f"must be one of {list(IMAGE_BACKENDS)}, "
                          f"got {values['images_backend']!r}")
    if "enable_cache" in values and not isinstance(values["enable_cache"], bool):
        raise ConfigError(source, "enable_cache", f"must be true or false, got "
                          f"{values['enable_cache']!r}")
    beam_args = values.get("beam_args", ())
    if isinstance(beam_args, str) or not isinstance(beam_args, Sequence) or not all(
        isinstance(arg, str) for arg in beam_args
    ):
        raise ConfigError(source, "beam_args", "beam_args must be a list of strings")
    for name in _MAPPING_FIELDS:
        if not isinstance(values.get(name) or {}, Mapping):
            raise ConfigError(source, name, f"'{name}' must be a mapping")


def _validate_sections(values: Mapping[str, Any], source: str) -> None:
    """Builds the component config classes from ``transform`` and ``trainer``; checks coupling."""
    from pipeline.defaults import component_configs
    from trainer.config import TrainerConfig
    from trainer.transform_config import TransformConfig

    for section, cls in (("transform", TransformConfig), ("trainer", TrainerConfig)):
        _reject_unknown(values[section], cls, source, section)
    effective = component_configs(values["transform"], values["trainer"], source)
    parsed = {}
    for section, cls in (("transform", TransformConfig), ("trainer", TrainerConfig)):
        try:
            parsed[section] = cls.from_dict(getattr(effective, section))
        except (ValueError, TypeError) as err:
            field = _FIELD_IN_MESSAGE.search(str(err))
            key = _dotted(section, field.group(1) if field else "")
            raise ConfigError(source, key, str(err)) from err
    trainer = parsed["trainer"]
    if (trainer.workers > 1 or trainer.accelerator) and not trainer.machine_type:
        raise ConfigError(source, "trainer.machine_type", "required with trainer.workers > 1 or "
                          "trainer.accelerator, which size a Vertex AI Training job (e.g. "
                          "n1-standard-16)")
    if parsed["trainer"].text_tower == "minilm" and not parsed["transform"].wordpiece_max_tokens:
        raise ConfigError(source, "trainer.text_tower", "minilm reads WordPiece ids: set "
                          "transform.wordpiece_max_tokens (e.g. 64)")


def _eval_settings(values: dict[str, Any], source: str) -> EvalSettings:
    """Type-checks the ``eval`` section (thresholds are numbers, bounds lower/upper numbers)."""
    _reject_unknown(values, EvalSettings, source, "eval")
    for name in ("rsum_lower_bound", "rsum_change_threshold"):
        if name in values:
            values[name] = _number(values[name], source, f"eval.{name}")
    bounds = values.get("metric_bounds") or {}
    if not isinstance(bounds, Mapping):
        raise ConfigError(source, "eval.metric_bounds", "must map metric names to "
                          "{lower: x, upper: y}")
    checked = {}
    for metric, entry in bounds.items():
        key = f"eval.metric_bounds.{metric}"
        if not isinstance(entry, Mapping) or not entry:
            raise ConfigError(source, key, f"must be a mapping with keys among {BOUND_KEYS}")
        for bound in entry:
            if bound not in BOUND_KEYS:
                raise ConfigError(source, f"{key}.{bound}", f"unknown bound; use {BOUND_KEYS}")
        checked[metric] = {b: _number(v, source, f"{key}.{b}") for b, v in entry.items()}
        if checked[metric].get("lower", -math.inf) > checked[metric].get("upper", math.inf):
            raise ConfigError(source, key, f"lower bound exceeds upper bound: {dict(entry)}")
    values["metric_bounds"] = checked
    return EvalSettings(**values)


def _number(value: Any, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(source, key, f"must be a number, got {value!r}")
    return float(value)
