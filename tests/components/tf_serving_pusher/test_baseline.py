"""LatestPushedModelStrategy on a hand-built ML Metadata store shaped like TFX's records."""

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from tfx.types import standard_artifacts

from components.tf_serving_pusher.baseline import LatestPushedModelStrategy, pushed_model_source


class _Store:
    """A SQLite store with Trainer models and Pusher executions (model in, PushedModel out)."""

    def __init__(self, path):
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = metadata_store.MetadataStore(config)
        self.pusher_type = self.store.put_execution_type(pb.ExecutionType(name="Pusher"))
        self.models, self.pushes = [], []

    def model(self, name: str) -> standard_artifacts.Model:
        model = standard_artifacts.Model()
        model.uri = f"/root/Trainer/model/{name}"
        model.type_id = self.store.put_artifact_type(model.artifact_type)
        model.id = self.store.put_artifacts([model.mlmd_artifact])[0]
        self.models.append(model)
        return model

    def push(self, model: standard_artifacts.Model, pushed: int,
             version: str | None) -> standard_artifacts.PushedModel:
        """A Pusher execution of ``model``; ``version``: what it records as ``pushed_version``."""
        push = standard_artifacts.PushedModel()
        push.uri = f"/root/Pusher/pushed_model/{len(self.pushes)}"
        push.type_id = self.store.put_artifact_type(push.artifact_type)
        push.set_int_custom_property("pushed", pushed)
        if version is not None:
            push.set_string_custom_property("pushed_version", version)
        events = [(model.mlmd_artifact, _event(pb.Event.INPUT, "model")),
                  (push.mlmd_artifact, _event(pb.Event.OUTPUT, "pushed_model"))]
        _, ids, _ = self.store.put_execution(
            pb.Execution(type_id=self.pusher_type, last_known_state=pb.Execution.COMPLETE),
            events, [])
        push.id = ids[1]
        self.pushes.append(push)
        return push

    def resolve(self, serving_dir) -> tuple[list, list]:
        result = LatestPushedModelStrategy(str(serving_dir), "xm").resolve_artifacts(
            self.store, {"model": list(self.models), "pushed_model": list(self.pushes)})
        return ([m.uri for m in result["model"]], [p.id for p in result["pushed_model"]])


def _event(kind, key: str) -> pb.Event:
    event = pb.Event(type=kind)
    event.path.steps.add().key = key
    return event


def test_the_baseline_is_the_model_last_pushed_that_is_still_served(tmp_path):
    records = _Store(tmp_path / "metadata.db")
    serving = tmp_path / "serving"
    first, second, blessed_only = (records.model(n) for n in ("1", "2", "3"))
    assert records.resolve(serving) == ([], [])
    push_1 = records.push(first, pushed=1, version="100")
    push_2 = records.push(second, pushed=1, version="200")
    records.push(blessed_only, pushed=0, version=None)  # not blessed: nothing recorded
    for version in ("100", "200"):
        (serving / "xm" / version).mkdir(parents=True)

    assert records.resolve(serving) == ([second.uri], [push_2.id])
    (serving / "xm" / "200").rmdir()  # a version removed by hand is no longer served
    assert records.resolve(serving) == ([first.uri], [push_1.id])
    assert records.resolve(tmp_path / "another_serving_dir") == ([], [])


def test_a_model_found_identical_to_the_served_version_counts_as_pushed(tmp_path):
    records = _Store(tmp_path / "metadata.db")
    (tmp_path / "xm" / "100").mkdir(parents=True)
    first, retrained = records.model("1"), records.model("2")
    records.push(first, pushed=1, version="100")
    same_files = records.push(retrained, pushed=0, version="100")
    assert records.resolve(tmp_path) == ([retrained.uri], [same_files.id])


@pytest.mark.parametrize("kept", [False, True])
def test_a_push_of_a_model_no_longer_live_is_skipped(tmp_path, kept):
    records = _Store(tmp_path / "metadata.db")
    (tmp_path / "xm" / "100").mkdir(parents=True)
    (tmp_path / "xm" / "200").mkdir(parents=True)
    first, second = records.model("1"), records.model("2")
    records.push(first, pushed=1, version="100")
    records.push(second, pushed=1, version="200")
    assert pushed_model_source(records.store, records.pushes[1].id) == second.id
    if not kept:  # the channel holds live artifacts only
        records.models.remove(second)
    expected = second if kept else first
    assert records.resolve(tmp_path)[0] == [expected.uri]
