"""A run whose blessed model is not what the serving folder serves must fail; the push line."""

import pathlib

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline.mlmd_summary import NodeRun
from pipeline.summary import format_summary, unserved_model_error


def _artifact(artifact_id: int, uri: str = "", **properties) -> pb.Artifact:
    artifact = pb.Artifact(id=artifact_id, uri=uri)
    for name, value in properties.items():
        if isinstance(value, int):
            artifact.custom_properties[name].int_value = value
        else:
            artifact.custom_properties[name].string_value = value
    return artifact


def _model(folder: pathlib.Path, payload: bytes) -> pathlib.Path:
    """A Trainer ``Model`` folder whose serving export holds ``payload``."""
    (folder / "Format-Serving").mkdir(parents=True)
    (folder / "Format-Serving" / "saved_model.pb").write_bytes(payload)
    return folder


def _nodes(model: pathlib.Path, blessed: int, baseline_id: int | None = None,
           push: pb.Artifact | None = None) -> dict[str, NodeRun]:
    """Trainer (model id 7), Evaluator (its verdict; baseline model id) and Pusher of one run."""
    inputs = {"model": [_artifact(7, str(model))]}
    if baseline_id is not None:
        inputs["baseline_model"] = [_artifact(baseline_id)]
    nodes = {
        "Trainer": NodeRun("Trainer", "cached", 0.0, 1, {"model": [_artifact(7, str(model))]}),
        "Evaluator": NodeRun("Evaluator", "ran", 9.0, 2,
                             {"blessing": [_artifact(8, blessed=blessed)]}, inputs),
    }
    if push is not None:
        nodes["Pusher"] = NodeRun("Pusher", "ran", 1.0, 3, {"pushed_model": [push]})
    return nodes


@pytest.fixture()
def served(tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    """(serving folder whose latest ``xm`` version is model A, model A's Trainer folder)."""
    serving = tmp_path / "serving"
    (serving / "xm" / "100").mkdir(parents=True)
    (serving / "xm" / "100" / "saved_model.pb").write_bytes(b"model A")
    return serving, _model(tmp_path / "a", b"model A")


def test_a_blessed_model_that_is_served_passes(served):
    serving, model_a = served
    assert unserved_model_error(_nodes(model_a, blessed=1), str(serving), "xm") is None
    # Blessed in an earlier run and the baseline itself: served, so nothing to report.
    assert unserved_model_error(_nodes(model_a, 0, baseline_id=7), str(serving), "xm") is None


def test_a_blessed_model_that_is_not_served_is_an_error(served, tmp_path):
    serving, _ = served
    model_b = _model(tmp_path / "b", b"model B")
    error = unserved_model_error(_nodes(model_b, blessed=1), str(serving), "xm")
    assert error is not None
    assert error.startswith(f"model {model_b} is blessed but {serving / 'xm'} does not serve it "
                            "(its latest version 100 is another model)")
    assert "re-run the same command" in error
    # The candidate refused as its own baseline was blessed before: an empty folder fails too.
    error = unserved_model_error(_nodes(model_b, 0, baseline_id=7), str(tmp_path / "none"), "xm")
    assert error is not None and "(it is empty)" in error


def test_a_model_not_blessed_is_no_error(served, tmp_path):
    serving, _ = served
    model_b = _model(tmp_path / "b", b"model B")
    assert unserved_model_error(_nodes(model_b, 0, baseline_id=3), str(serving), "xm") is None
    assert unserved_model_error(_nodes(model_b, 0), str(serving), "xm") is None
    assert unserved_model_error({}, str(serving), "xm") is None


@pytest.mark.parametrize(("push", "line"), [
    (_artifact(9, pushed=1, pushed_version="100", pushed_destination="/s/xm/100"),
     "pushed: version 100 -> /s/xm/100"),
    (_artifact(9, pushed=0, pushed_version="100"),
     "pushed: nothing (identical to the serving version 100)"),
    (_artifact(9, pushed=0), "pushed: nothing (model not blessed)"),
])
def test_the_push_line_says_why_nothing_was_pushed(monkeypatch, served, push, line):
    from pipeline import summary

    monkeypatch.setattr(summary, "metrics_table", lambda uri: [])
    monkeypatch.setattr(summary, "ingest_skip_lines", lambda nodes: [])
    _, model_a = served
    text = format_summary(_nodes(model_a, blessed=1, push=push), "/root")
    assert text.splitlines()[-1] == line
