"""The TFMA retrieval metric, run by the stock TFX Evaluator on a tiny exported model."""


import numpy as np
import pytest
import tensorflow as tf

from components.relevance import store
from components.retrieval_metrics import MetricSettings, build_eval_config, metric_names
from serving import rouge
from tests.components import tiny_retrieval_model as tiny
from trainer import features, metrics


def _expected(module, rows, with_ndcg=True):
    """The pure functions on the same embeddings, relevance from the reference rouge_l."""
    out = module.serve(tf.constant([tiny.serialize(r) for r in rows]))
    image = out[features.IMAGE_EMBEDDING_OUTPUT].numpy()
    text = out[features.TEXT_EMBEDDING_OUTPUT].numpy()
    image_ids = [r[0] for r in rows]
    want = metrics.retrieval_metrics(image, image_ids, text, image_ids)
    if with_ndcg:
        gallery = list(dict.fromkeys(image_ids))
        refs = {g: [r[2] for r in rows if r[0] == g] for g in gallery}
        relevance = np.array([[rouge.rouge_l(r[2], refs[g]) for g in gallery] for r in rows])
        want.update(metrics.semantic_ndcg(image, image_ids, text, image_ids, relevance))
    return want


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tiny.make_workspace(tmp_path_factory.mktemp("tfma"))


def _run_evaluator(workspace, name, eval_config, baseline=None):
    return tiny.run_evaluator(workspace["root"], name, eval_config, baseline)[:2]


def _metric_values(evaluation_uri):
    import tensorflow_model_analysis as tfma

    [slice_metrics] = list(tfma.load_metrics(evaluation_uri))
    values = {}
    for kv in slice_metrics.metric_keys_and_values:
        key = kv.key
        label = key.name + ("/diff" if key.is_diff else "") + f"@{key.model_name}"
        values[label] = kv.value.double_value.value
    return values


def test_tfma_metrics_equal_pure_functions_and_gate(workspace):
    rel_dir = workspace["root"] / "relevance_cache"
    want = _expected(workspace["good"], workspace["rows"])
    config = build_eval_config(rsum_lower_bound=want["rsum"] - 1.0,
                               settings=MetricSettings(relevance_dir=str(rel_dir)))
    uri, blessed = _run_evaluator(workspace, "single", config)
    got = _metric_values(uri)
    for name in metric_names():
        assert got[f"{name}@"] == pytest.approx(want[name], rel=1e-5), name
    assert blessed
    assert len(list(rel_dir.glob("*.npy"))) == 1  # computed on a miss and cached by content key

    import tensorflow_model_analysis as tfma

    assert tfma.load_validation_result(uri).validation_ok


def test_baseline_diff_metrics_and_failing_change_threshold(workspace):
    want = _expected(workspace["good"], workspace["rows"], with_ndcg=False)
    base = _expected(workspace["other"], workspace["rows"], with_ndcg=False)
    assert want["rsum"] != base["rsum"]
    change = want["rsum"] - base["rsum"]
    # Passing: the candidate must be no worse than (change - 1) against the baseline.
    config = build_eval_config(rsum_lower_bound=0.0, rsum_change=change - 1.0,
                               settings=MetricSettings(with_ndcg=False))
    uri, blessed = _run_evaluator(workspace, "pass", config, baseline="other")
    got = _metric_values(uri)
    assert got["rsum@candidate"] == pytest.approx(want["rsum"])
    assert got["rsum@baseline"] == pytest.approx(base["rsum"])
    assert got["rsum/diff@candidate"] == pytest.approx(change)
    assert got["t2i_medr/diff@candidate"] == pytest.approx(want["t2i_medr"] - base["t2i_medr"])
    assert blessed
    # Failing: demand one more rsum point than the candidate gained, and a bound it misses.
    config = build_eval_config(rsum_lower_bound=0.0, rsum_change=change + 1.0,
                               settings=MetricSettings(with_ndcg=False),
                               metric_bounds={"t2i_meanr": {"upper": want["t2i_meanr"] - 0.5}})
    uri, blessed = _run_evaluator(workspace, "fail", config, baseline="other")
    assert not blessed
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(uri)
    failed = {f.metric_key.name for s in result.metric_validations_per_slice for f in s.failures}
    assert failed == {"rsum", "t2i_meanr"}


def test_cached_relevance_is_used(workspace, tmp_path):
    rows = workspace["rows"]
    eval_set = store.EvalSet.from_triples([r[0] for r in rows], [r[1] for r in rows],
                                          [r[2] for r in rows])
    fake = np.zeros((len(eval_set.caption_ids), len(eval_set.gallery)), np.float32)
    store.save(str(tmp_path), eval_set, fake)
    loaded, cached = store.load_or_compute(str(tmp_path), eval_set)
    assert cached and np.array_equal(loaded, fake)
