"""Corpus-level retrieval metrics for the TFMA Evaluator and the EvalConfig that gates on them."""

from components.retrieval_metrics.eval_config import MetricSettings, build_eval_config
from components.retrieval_metrics.metric import RetrievalCombiner, RetrievalMetrics, metric_names

__all__ = ["MetricSettings", "RetrievalCombiner", "RetrievalMetrics", "build_eval_config",
           "metric_names"]
