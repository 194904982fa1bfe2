"""Checks of single configuration values: top-level fields, model name, eval, training job.

``pipeline.config`` builds a ``PipelineConfig`` with these; every failure is a ``ConfigError``
naming the source (file or command line) and the dotted key. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from serving.layout import NAME_MAX, PLAIN_NAME_RULE, SEARCH_MODEL_SUFFIX, is_plain_name

# The keys of one ``eval.metric_bounds`` entry (as the Evaluator's EvalConfig reads them).
BOUND_KEYS = ("lower", "upper")
MAPPING_FIELDS = ("dataset", "transform", "trainer", "training_job", "eval")
# The image featurizer's backends (components/image_featurizer/config.py: TFLITE, TF), named
# here because importing that package imports Beam, and configuration is checked before that.
IMAGE_BACKENDS = ("tflite", "tf")
# rsum sums six recalls in percent (R@1, R@5, R@10 both ways), so it lies in 0..600.
RSUM_MAX = 600.0
_STR_FIELDS = ("pipeline_name", "pipeline_root", "serving_dir", "model_name")
_OPTIONAL_STR_FIELDS = ("data_dir", "images_dir", "metadata_path")


class ConfigError(ValueError):
    """A configuration value that cannot be used, named by its source and dotted key.

    Attributes:
      source: the config file (``path`` or ``path:line:column``) or the command line.
      key: the dotted key, e.g. ``eval.rsum_lower_bound``; empty for a whole-file problem.

    """

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


def dotted_key(section: str, key: Any) -> str:
    """``section.key``, or ``key`` at the top level."""
    return f"{section}.{key}" if section else str(key)


def reject_unknown(values: Mapping[str, Any], cls: type, source: str, section: str) -> None:
    """Raises ConfigError naming every key of ``values`` that is not a field of ``cls``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        key = ", ".join(dotted_key(section, name) for name in unknown)
        raise ConfigError(source, key, f"unknown config key; known keys: {sorted(known)}")


def check_top_level(values: Mapping[str, Any], source: str) -> None:
    """Type checks of the top-level fields (the sections are checked by their own classes)."""
    _check_strings(values, source)
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
    for name in MAPPING_FIELDS:
        if not isinstance(values.get(name) or {}, Mapping):
            raise ConfigError(source, name, f"'{name}' must be a mapping")


def _check_strings(values: Mapping[str, Any], source: str) -> None:
    """Names and paths are strings (no NUL: no file API takes one); the model name is plain."""
    for name in _STR_FIELDS:
        if name in values and (not isinstance(values[name], str) or not values[name]):
            raise ConfigError(source, name, f"must be a non-empty string, got {values[name]!r}")
    for name in _OPTIONAL_STR_FIELDS:
        if values.get(name) is not None and not isinstance(values[name], str):
            raise ConfigError(source, name, f"must be a string, got {values[name]!r}")
    for name in (*_STR_FIELDS, *_OPTIONAL_STR_FIELDS):
        if "\0" in (values.get(name) or ""):
            raise ConfigError(source, name, f"{values[name]!r} contains a NUL character")
    if "model_name" in values:
        _check_model_name(values["model_name"], source)


def _check_model_name(name: str, source: str) -> None:
    """A plain folder name that is not, and cannot become, the name of a search model.

    Every pushed model ``M`` is served with its search model ``M_search``. A model named
    ``X_search`` would publish its encoder under the name of ``X``'s search model (whether or not
    ``X`` is served yet), so no model name may end in the suffix: then no encoder and no search
    model pushed by the pipeline can share a name.
    """
    # A folder of the serving directory and a path segment of TF Serving's REST URLs
    # (/v1/models/<name>): plain ASCII, so it needs no quoting anywhere; the search model's
    # folder must fit the filesystem's name length too.
    longest = NAME_MAX - len(SEARCH_MODEL_SUFFIX)
    if not is_plain_name(name, longest):
        raise ConfigError(source, "model_name", f"{name!r} must be a folder name of "
                          f"{PLAIN_NAME_RULE}, at most {longest} characters")
    if name.endswith(SEARCH_MODEL_SUFFIX):
        raise ConfigError(source, "model_name", f"{name!r} ends in {SEARCH_MODEL_SUFFIX!r}, "
                          f"which names search models: it is the search model of a model "
                          f"{name[:-len(SEARCH_MODEL_SUFFIX)]!r}; choose a name that does not "
                          f"end in {SEARCH_MODEL_SUFFIX!r}")


def eval_values(values: dict[str, Any], source: str) -> dict[str, Any]:
    """The ``eval`` section checked: finite thresholds within rsum's range, lower/upper bounds.

    Returns:
      ``values`` with the thresholds and bounds as floats.

    """
    for name, low in (("rsum_lower_bound", 0.0), ("rsum_change_threshold", -RSUM_MAX)):
        if name in values:
            values[name] = _number(values[name], source, f"eval.{name}", (low, RSUM_MAX))
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
    return values


def _number(value: Any, source: str, key: str,
            bounds: tuple[float, float] = (-math.inf, math.inf)) -> float:
    """``value`` as a float; it must be a finite number within ``bounds`` (inclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(source, key, f"must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(source, key, f"must be a finite number, got {value!r}")
    low, high = bounds
    if not low <= number <= high:
        raise ConfigError(source, key, f"must be within {low:g}..{high:g}, got {value!r}")
    return number


def training_job_values(values: dict[str, Any], source: str) -> dict[str, Any]:
    """The ``training_job`` section checked: ``workers`` >= 1, ``accelerator`` ``TYPE:COUNT``.

    Raises:
      ConfigError: a bad value, or ``workers`` > 1 or an accelerator without a machine type.

    """
    workers = values.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(source, "training_job.workers", f"must be an integer >= 1, got "
                          f"{workers!r}")
    for name in ("machine_type", "accelerator"):
        if not isinstance(values.get(name, ""), str):
            raise ConfigError(source, f"training_job.{name}", f"must be a string, got "
                              f"{values[name]!r}")
    accelerator = values.get("accelerator", "")
    kind, _, count = accelerator.partition(":")
    if accelerator and not (kind and count.isdigit() and int(count) > 0):
        raise ConfigError(source, "training_job.accelerator", f"{accelerator!r}: must be "
                          "TYPE:COUNT, e.g. NVIDIA_TESLA_T4:1")
    if (workers > 1 or accelerator) and not values.get("machine_type"):
        raise ConfigError(source, "training_job.machine_type", "required with "
                          "training_job.workers > 1 or training_job.accelerator, which size a "
                          "Vertex AI Training job (e.g. n1-standard-16)")
    return values
