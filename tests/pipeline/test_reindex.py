"""After a run, the configured collection is re-indexed only when the Pusher pushed a version."""

from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import config as config_lib
from pipeline.mlmd_summary import NodeRun
from pipeline.reindex import pushed_version, reindex_after_push
from tests.serving.collection_fixtures import push, write_photos


@pytest.fixture(scope="module")
def bytes_model_dir(tmp_path_factory):
    from tests.serving.bytes_encoder import write_bytes_encoder

    return write_bytes_encoder(tmp_path_factory.mktemp("bytes") / "encoder")


def _nodes(state: str, pushed: int, version: int) -> dict[str, NodeRun]:
    artifact = metadata_store_pb2.Artifact()
    artifact.custom_properties["pushed"].int_value = pushed
    artifact.custom_properties["pushed_version"].int_value = version
    return {"Pusher": NodeRun("Pusher", state, 1.0, 0, {"pushed_model": [artifact]}, {})}


def test_only_a_pusher_that_ran_and_pushed_names_a_version():
    assert pushed_version(_nodes("ran", 1, 5)) == 5
    assert pushed_version(_nodes("ran", 0, 5)) is None  # identical to the served version
    assert pushed_version(_nodes("cached", 1, 5)) is None  # an earlier run's push
    assert pushed_version({}) is None


def test_a_push_re_indexes_the_configured_collection_with_the_new_version(
        tmp_path, bytes_model_dir, capsys):
    from serving.collection.api import open_index

    serving = tmp_path / "serving"
    push(serving, bytes_model_dir, 1)
    write_photos(tmp_path / "photos", range(3))
    config = config_lib.apply_overrides(config_lib.PipelineConfig(), [
        f"serving_dir={serving}", f"index.collection={tmp_path / 'photos'}", "index.name=mine"])
    assert reindex_after_push(config, _nodes("ran", 0, 1)) == 0
    assert "nothing pushed, index 'mine' kept" in capsys.readouterr().out
    assert not (serving / "collections").exists()

    assert reindex_after_push(config, _nodes("ran", 1, 1)) == 0
    assert "index: index 'mine' version" in capsys.readouterr().out
    push(serving, bytes_model_dir, 2)
    assert reindex_after_push(config, _nodes("ran", 1, 2)) == 0
    index = open_index(str(serving), "mine")
    assert (index.model_version, index.manifest.counts["embedded"]) == (2, 3)


def test_a_failed_re_index_fails_the_run_and_says_how_to_retry(tmp_path, bytes_model_dir, capsys):
    serving = tmp_path / "serving"
    push(serving, bytes_model_dir, 1)
    config = config_lib.apply_overrides(config_lib.PipelineConfig(), [
        f"serving_dir={serving}", f"index.collection={tmp_path / 'missing'}"])
    assert reindex_after_push(config, _nodes("ran", 1, 1)) == 1
    out = capsys.readouterr().out
    assert "does not exist" in out and "python -m pipeline index --collection" in out
    assert sorted(p.name for p in serving.iterdir()) == ["xmodal"]
