"""Pipeline configuration: one typed place, loaded from YAML/JSON and overridable from the CLI.

``from_dict`` parses a configuration once: the ``transform`` and ``trainer`` sections become the
effective ``TransformConfig`` and ``TrainerConfig`` (``pipeline.defaults``, where every default
of the model is), which the pipeline hands to the Transform and the Trainer as their
``custom_config``. Nothing here imports TensorFlow or TFX, so a bad value is reported (file and
dotted key, as a ``ConfigError``) before any slow import or any write.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from pipeline import defaults
from pipeline.config_checks import (
    MAPPING_FIELDS,
    ConfigError,
    check_top_level,
    eval_values,
    reject_unknown,
    training_job_values,
)
from pipeline.config_file import read_values
from serving.layout import DEFAULT_BEAM_ARGS
from trainer.config import TrainerConfig
from trainer.tokens.transform_config import TransformConfig

# Fields that a configuration never sets: they are derived from the sections it sets.
_DERIVED_FIELDS = ("note", "configured")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Blessing thresholds for the Evaluator.

    Attributes:
      rsum_lower_bound: absolute lower bound on eval rsum (sum of the six recalls, 0..600).
      rsum_change_threshold: minimum rsum gain over the baseline (the model last pushed); a
        negative value tolerates that much regression.
      metric_bounds: optional extra absolute bounds, metric name -> {"lower": x, "upper": y},
        e.g. ``{"t2i_r1": {"lower": 10}, "t2i_medr": {"upper": 20}}``.

    """

    rsum_lower_bound: float = 30.0
    rsum_change_threshold: float = -1.0
    metric_bounds: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class IndexSettings:
    """The collection that ``run`` and ``retrain`` re-index after each push (docs/collection.md).

    Attributes:
      collection: a folder or glob of photos, or an image features ``.npy``; None: no re-index.
      captions: a Flickr-format captions file of those photos, or None.
      name: the index name (a plain name).

    """

    collection: str | None = None
    captions: str | None = None
    name: str = "collection"


@dataclasses.dataclass(frozen=True)
class TrainingJob:
    """The Vertex AI Training job that runs the Trainer (``pipeline.vertex_runner``).

    Attributes:
      workers: machines of the job (1 chief + ``workers - 1`` workers); each gets its
        ``TF_CONFIG`` from Vertex, which is all the Trainer reads of the cluster.
      machine_type: Vertex AI machine type of each worker (empty: the Trainer runs as a plain
        component).
      accelerator: Vertex AI accelerator of each worker as ``TYPE:COUNT``, e.g.
        ``NVIDIA_TESLA_T4:1`` (empty: none).

    """

    workers: int = 1
    machine_type: str = ""
    accelerator: str = ""


def _default_section(name: str) -> Any:
    """One of the effective settings of a configuration that sets nothing."""
    return getattr(from_dict({}, source="defaults"), name)


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
      transform: the Transform's effective settings: the ``transform`` section over
        ``TransformConfig``'s defaults (no WordPiece ids for a tower that does not read them;
        ``pipeline.defaults``).
      trainer: the Trainer's effective settings: the ``trainer`` section over
        ``TrainerConfig``'s defaults.
      training_job: the Vertex AI Training job of the Trainer; read by the pipeline only.
      eval: blessing thresholds.
      index: the collection re-indexed after a push (``index.collection``; none by default).
      note: what the defaults chose in place of the configuration (missing pretrained files),
        for the run's output; None if nothing. Derived, never configured.
      configured: the ``transform`` and ``trainer`` sections as written (file, flags,
        overrides), which later overrides are laid over before the defaults apply again.
        Derived, never configured.

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
    transform: TransformConfig = dataclasses.field(
        default_factory=lambda: _default_section("transform"))
    trainer: TrainerConfig = dataclasses.field(default_factory=lambda: _default_section("trainer"))
    training_job: TrainingJob = dataclasses.field(default_factory=TrainingJob)
    eval: EvalSettings = dataclasses.field(default_factory=EvalSettings)
    index: IndexSettings = dataclasses.field(default_factory=IndexSettings)
    note: str | None = dataclasses.field(default_factory=lambda: _default_section("note"))
    configured: Mapping[str, Mapping[str, Any]] = dataclasses.field(
        default_factory=dict, repr=False, compare=False)

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
        from_dict(plain_values(self), source="configuration")
        return self


def plain_values(config: PipelineConfig) -> dict[str, Any]:
    """The plain values that ``from_dict`` builds ``config`` from (sections as configured)."""
    values = dataclasses.asdict(config)
    for name in _DERIVED_FIELDS:
        del values[name]
    for section in ("transform", "trainer"):
        values[section] = dict(config.configured.get(section, {}))
    return values


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
    reject_unknown(values, PipelineConfig, source, "")
    derived = [name for name in _DERIVED_FIELDS if name in values]
    if derived:
        raise ConfigError(source, ", ".join(derived), "derived from the transform and trainer "
                          "sections, never configured")
    check_top_level(values, source)
    for section in MAPPING_FIELDS:
        values[section] = dict(values.get(section) or {})
    values["configured"] = {"transform": values["transform"], "trainer": values["trainer"]}
    configs = defaults.component_configs(values["transform"], values["trainer"], source)
    values.update(transform=configs.transform, trainer=configs.trainer, note=configs.note)
    reject_unknown(values["training_job"], TrainingJob, source, "training_job")
    values["training_job"] = TrainingJob(**training_job_values(values["training_job"], source))
    reject_unknown(values["eval"], EvalSettings, source, "eval")
    values["eval"] = EvalSettings(**eval_values(values["eval"], source))
    values["index"] = _index_settings(values.get("index") or {}, source)
    if "beam_args" in values:
        values["beam_args"] = tuple(values["beam_args"])
    return PipelineConfig(**values)


def load(path: str | os.PathLike) -> PipelineConfig:
    """Loads and validates a PipelineConfig from a .yaml/.yml/.json file.

    Raises:
      FileNotFoundError: no such file.
      ConfigError: a syntax error (with line and column), a key repeated within one mapping
        (with its dotted key and lines) or a bad value (with its dotted key).

    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    values = read_values(path)
    if not isinstance(values, Mapping):
        raise ConfigError(str(path), "", "top level must be a mapping of config fields")
    return from_dict(values, source=str(path))


def apply_overrides(config: PipelineConfig, overrides: Sequence[str]) -> PipelineConfig:
    """Applies ``section.key=value`` / ``key=value`` overrides (values parsed as YAML scalars).

    Examples: ``trainer.loss=fhn``, ``eval.rsum_lower_bound=50``, ``enable_cache=false``.
    """
    return set_values(config, parse_overrides(overrides))


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of each ``key=value`` override, the value parsed as YAML.

    Raises:
      ConfigError: an item without ``=`` or a value that is not YAML.

    """
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError("command line", "", f"override '{item}' is not of the form "
                              "key=value")
        try:
            parsed.append((key, yaml.safe_load(raw)))
        except yaml.YAMLError as err:
            raise ConfigError("command line", key, f"cannot parse {raw!r} as a YAML value: "
                              f"{err}") from err
    return parsed


def set_values(config: PipelineConfig, items: Iterable[tuple[str, Any]],
               source: str = "command line") -> PipelineConfig:
    """Sets ``(dotted key, value)`` pairs in order, as given (no parsing), then validates.

    Raises:
      ConfigError: a key whose parent is not a config section, or a bad resulting value.

    """
    values = plain_values(config)
    for key, value in items:
        *parents, leaf = key.split(".")
        target = values
        for part in parents:
            if part not in target or not isinstance(target[part], dict):
                raise ConfigError(source, key, f"'{part}' is not a config section")
            target = target[part]
        target[leaf] = value
    return from_dict(values, source=source)


def _index_settings(values: Any, source: str) -> IndexSettings:
    """Checks the ``index`` section: optional path strings and a plain index name."""
    from serving.collection.layout import check_name  # no TensorFlow: names and folders only

    if not isinstance(values, Mapping):
        raise ConfigError(source, "index", "must be a mapping with keys collection, captions, "
                          "name")
    reject_unknown(values, IndexSettings, source, "index")
    for key in ("collection", "captions", "name"):
        value = values.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(source, f"index.{key}", f"must be a non-empty string, got "
                              f"{value!r}")
    if values.get("captions") and not values.get("collection"):
        raise ConfigError(source, "index.captions", "needs index.collection")
    try:
        check_name(values.get("name", IndexSettings.name))
    except ValueError as err:
        raise ConfigError(source, "index.name", str(err).replace("--name ", "")) from err
    return IndexSettings(**values)
