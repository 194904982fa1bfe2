import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import standard_artifacts

from components import anomalies_gate, evaluator


def _model(artifact_id: int, uri: str):
    model = standard_artifacts.Model()
    model.id = artifact_id
    model.uri = uri
    return model


def test_same_model_detected_by_artifact_id_only():
    same = {"model": [_model(7, "/a")], "baseline_model": [_model(7, "/a")]}
    other = {"model": [_model(8, "/b")], "baseline_model": [_model(7, "/a")]}
    assert evaluator.is_same_model(same)
    assert not evaluator.is_same_model(other)
    assert not evaluator.is_same_model({"model": [_model(8, "/b")], "baseline_model": []})
    assert not evaluator.is_same_model({"model": [_model(8, "/b")]})


def test_gate_lists_every_anomaly_with_split_and_feature(tmp_path):
    for split, features in (("train", {}), ("eval", {"caption": "Missing values"})):
        anomalies = anomalies_pb2.Anomalies()
        for name, description in features.items():
            anomalies.anomaly_info[name].description = description
        (tmp_path / f"Split-{split}").mkdir()
        (tmp_path / f"Split-{split}" / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    problems = anomalies_gate.describe_anomalies(str(tmp_path), ["train", "eval"])
    assert problems == ["split 'eval', feature 'caption': Missing values"]


def test_gate_missing_file_is_an_error(tmp_path):
    with pytest.raises(Exception, match="SchemaDiff.pb"):
        anomalies_gate.describe_anomalies(str(tmp_path), ["train"])


def test_relevance_input_artifact_is_written_into_the_eval_config():
    import json

    import tensorflow_model_analysis as tfma
    from tfx.utils import proto_utils

    from components.artifacts import RelevanceMatrix
    from components.retrieval_metrics import build_eval_config

    relevance = RelevanceMatrix()
    relevance.uri = "/root/RelevanceGen/relevance/7"
    properties = {"eval_config": proto_utils.proto_to_json(build_eval_config(150.0)),
                  "example_splits": '["eval"]'}
    updated = evaluator.with_relevance_input({"relevance": [relevance]}, properties)
    config = proto_utils.json_to_proto(updated["eval_config"], tfma.EvalConfig())
    retrieval = next(m for m in config.metrics_specs[0].metrics
                     if m.class_name == "RetrievalMetrics")
    assert json.loads(retrieval.config)["relevance_dir"] == relevance.uri
    assert updated["example_splits"] == '["eval"]'
    assert properties["eval_config"] != updated["eval_config"]  # the input is not mutated
    assert evaluator.with_relevance_input({}, properties) is properties


def test_evaluator_declares_the_relevance_input():
    from tfx import types
    from tfx.types import standard_artifacts

    from components.artifacts import RelevanceMatrix
    from components.retrieval_metrics import build_eval_config

    component = evaluator.Evaluator(
        examples=types.Channel(type=standard_artifacts.Examples),
        model=types.Channel(type=standard_artifacts.Model),
        relevance=types.Channel(type=RelevanceMatrix),
        eval_config=build_eval_config(1.0),
        example_splits=["eval"],
    )
    assert component.inputs["relevance"].type_name == "xmodal.RelevanceMatrix"
    assert set(component.outputs) == {"evaluation", "blessing"}
    assert component.exec_properties["example_splits"] == '["eval"]'
