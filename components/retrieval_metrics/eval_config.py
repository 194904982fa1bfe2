"""The Evaluator's ``EvalConfig``: retrieval metrics, rsum gates, optional per-metric bounds."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping

import tensorflow_model_analysis as tfma

from components.retrieval_metrics import metric
from trainer import features
from trainer import metrics as pure_metrics

BOUND_KEYS = ("lower", "upper")


def _bound_threshold(name: str, bounds: Mapping[str, float]) -> tfma.GenericValueThreshold:
    """A value threshold from ``{"lower": x, "upper": y}`` (either optional), checked."""
    unknown = set(bounds) - set(BOUND_KEYS)
    if unknown or not bounds:
        raise ValueError(f"metric_bounds[{name!r}]: keys must be among {BOUND_KEYS}; "
                         f"got {sorted(bounds)}")
    values = {key: float(bounds[key]) for key in bounds}
    if any(math.isnan(v) for v in values.values()):
        raise ValueError(f"metric_bounds[{name!r}]: bounds must be numbers, got {values}")
    if values.get("lower", -math.inf) > values.get("upper", math.inf):
        raise ValueError(f"metric_bounds[{name!r}]: lower {values['lower']} > upper "
                         f"{values['upper']}")
    threshold = tfma.GenericValueThreshold()
    for key, value in values.items():
        getattr(threshold, f"{key}_bound").value = value
    return threshold


@dataclasses.dataclass(frozen=True)
class MetricSettings:
    """What the retrieval metrics compute (``metric.RetrievalMetrics``'s JSON config).

    Attributes:
      ks: recall cut-offs.
      ndcg_k: nDCG cut-off.
      with_ndcg: compute the four ROUGE-L nDCG metrics.
      relevance_dir: folder holding the eval set's ROUGE-L relevance matrix ('' = compute it in
        the Evaluator); the pipeline leaves it empty and the Evaluator executor fills in its
        ``relevance`` input artifact with ``with_relevance_dir``.

    """

    ks: tuple[int, ...] = tuple(pure_metrics.DEFAULT_KS)
    ndcg_k: int = pure_metrics.DEFAULT_NDCG_K
    with_ndcg: bool = True
    relevance_dir: str = ""


def build_eval_config(rsum_lower_bound: float, rsum_change: float = 0.0,
                      metric_bounds: Mapping[str, Mapping[str, float]] | None = None,
                      settings: MetricSettings | None = None) -> tfma.EvalConfig:
    """The EvalConfig that blesses a candidate on corpus-level retrieval quality.

    Args:
      rsum_lower_bound: absolute floor of the candidate's rsum (sum of all recalls, percent).
      rsum_change: the candidate's rsum minus the baseline's must be ≥ this (higher is better;
        0 = no worse than the last blessed model, negative = a tolerated drop). TFX ignores it
        when there is no blessed model yet.
      metric_bounds: optional ``{metric name: {"lower": x, "upper": y}}`` for any metric of
        ``metric.metric_names(ks, with_ndcg)`` (e.g. ``{"t2i_medr": {"upper": 20}}``).
      settings: the metrics' cut-offs, nDCG switch and relevance folder (default: the
        defaults of ``MetricSettings``).

    Returns:
      A ``tfma.EvalConfig`` with one model spec (the TFX Evaluator adds the baseline), the
      overall slice, the retrieval metrics and their thresholds.

    Raises:
      ValueError: an unknown metric name or a malformed bound, naming it.

    """
    settings = settings or MetricSettings()
    names = metric.metric_names(settings.ks, settings.with_ndcg)
    thresholds = {"rsum": tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": float(rsum_lower_bound)}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": float(rsum_change)}))}
    for name, bounds in (metric_bounds or {}).items():
        if name not in names:
            raise ValueError(f"metric_bounds: unknown metric {name!r}; known: {', '.join(names)}")
        if name in thresholds:
            thresholds[name].value_threshold.CopyFrom(_bound_threshold(name, bounds))
        else:
            thresholds[name] = tfma.MetricThreshold(value_threshold=_bound_threshold(name, bounds))
    config = json.dumps({"ks": list(settings.ks), "ndcg_k": settings.ndcg_k,
                         "relevance_dir": settings.relevance_dir,
                         "with_ndcg": settings.with_ndcg})
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=features.SERVING_DEFAULT_SIGNATURE)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                     tfma.MetricConfig(class_name=metric.RetrievalMetrics.__name__,
                                       module=metric.__name__, config=config)],
            thresholds=thresholds)])


def with_relevance_dir(eval_config: tfma.EvalConfig, relevance_dir: str) -> tfma.EvalConfig:
    """A copy of ``eval_config`` whose retrieval metrics read the relevance matrix there.

    TFMA builds each metric from its ``MetricConfig`` alone, so a matrix that is only known at
    run time (an input artifact's URI) has to be written into that config before evaluating.

    Raises:
      ValueError: the config has no ``RetrievalMetrics`` metric to hand the folder to.

    """
    updated = tfma.EvalConfig()
    updated.CopyFrom(eval_config)
    retrieval = [config for spec in updated.metrics_specs for config in spec.metrics
                 if config.class_name == metric.RetrievalMetrics.__name__]
    if not retrieval:
        raise ValueError(f"eval_config has no {metric.RetrievalMetrics.__name__} metric to read "
                         f"the relevance matrix in {relevance_dir}")
    for config in retrieval:
        values = json.loads(config.config or "{}")
        values["relevance_dir"] = relevance_dir
        config.config = json.dumps(values, sort_keys=True)
    return updated
