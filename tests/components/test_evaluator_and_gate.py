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
