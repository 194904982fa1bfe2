import json

import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs

from components.retrieval_metrics import MetricSettings, build_eval_config, metric_names
from components.retrieval_metrics.metric import RetrievalMetrics


def test_metric_names_cover_recalls_ranks_and_ndcg():
    names = metric_names(ks=(1, 5))
    assert names[:4] == ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5")
    assert {"rsum", "i2t_medr", "t2i_meanr", "i2i_ndcg", "t2t_ndcg"} <= set(names)
    assert "t2t_ndcg" not in metric_names(with_ndcg=False)


def test_eval_config_thresholds():
    config = build_eval_config(rsum_lower_bound=150.0, rsum_change=-2.5,
                               metric_bounds={"t2i_medr": {"upper": 20},
                                              "rsum": {"lower": 160, "upper": 600}},
                               settings=MetricSettings(relevance_dir="/cache"))
    [spec] = config.metrics_specs
    rsum = spec.thresholds["rsum"]
    assert rsum.value_threshold.lower_bound.value == 160.0  # the explicit bound wins
    assert rsum.value_threshold.upper_bound.value == 600.0
    assert rsum.change_threshold.absolute.value == -2.5
    assert rsum.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    medr = spec.thresholds["t2i_medr"]
    assert medr.value_threshold.upper_bound.value == 20.0
    assert not medr.value_threshold.HasField("lower_bound")
    retrieval = next(m for m in spec.metrics if m.class_name == RetrievalMetrics.__name__)
    assert retrieval.module == "components.retrieval_metrics.metric"
    assert json.loads(retrieval.config)["relevance_dir"] == "/cache"
    assert config.model_specs[0].signature_name == "serving_default"


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"t2i_r50": {"lower": 1}}, "unknown metric 't2i_r50'"),
        ({"t2i_r1": {"min": 1}}, r"metric_bounds\['t2i_r1'\]: keys must be among"),
        ({"t2i_r1": {}}, r"metric_bounds\['t2i_r1'\]: keys must be among"),
        ({"t2i_r1": {"lower": 5, "upper": 1}}, "lower 5.0 > upper 1.0"),
    ],
)
def test_bad_bounds_are_rejected(bounds, message):
    with pytest.raises(ValueError, match=message):
        build_eval_config(rsum_lower_bound=0.0, metric_bounds=bounds)


def test_metric_instance_round_trips_through_metric_config():
    config = build_eval_config(rsum_lower_bound=0.0,
                               settings=MetricSettings(ks=(1, 10), ndcg_k=10, with_ndcg=False))
    retrieval = next(m for m in config.metrics_specs[0].metrics
                     if m.class_name == RetrievalMetrics.__name__)
    instance = metric_specs.metric_instance(retrieval)
    [computation] = instance.computations(model_names=["candidate"])
    assert sorted(k.name for k in computation.keys) == sorted(metric_names((1, 10), False))
    assert {k.model_name for k in computation.keys} == {"candidate"}


def test_with_relevance_dir_points_only_the_retrieval_metric_at_the_folder():
    from components.retrieval_metrics.eval_config import with_relevance_dir

    config = build_eval_config(rsum_lower_bound=1.0, settings=MetricSettings(ks=(1, 5)))
    updated = with_relevance_dir(config, "gs://b/relevance/3")
    retrieval = next(m for m in updated.metrics_specs[0].metrics
                     if m.class_name == RetrievalMetrics.__name__)
    assert json.loads(retrieval.config) == {"ks": [1, 5], "ndcg_k": 25,
                                            "relevance_dir": "gs://b/relevance/3",
                                            "with_ndcg": True}
    original = next(m for m in config.metrics_specs[0].metrics
                    if m.class_name == RetrievalMetrics.__name__)
    assert json.loads(original.config)["relevance_dir"] == ""
    with pytest.raises(ValueError, match="no RetrievalMetrics metric"):
        with_relevance_dir(tfma.EvalConfig(), "/x")
