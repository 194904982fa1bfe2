"""Cleanup after an interrupted run, on a hand-built ML Metadata store shaped like TFX's."""

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline import recovery


def _new_store(path) -> metadata_store.MetadataStore:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def _context(store, type_id: int, name: str) -> int:
    return store.put_contexts([pb.Context(type_id=type_id, name=name)])[0]


def _execution(store, state, contexts: list[int], outputs: dict[str, str]) -> int:
    """An execution in ``contexts`` with one output artifact per (uri -> artifact state name)."""
    type_id = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    artifact_type = store.put_artifact_type(pb.ArtifactType(name="Model"))
    execution = pb.Execution(type_id=type_id, last_known_state=state)
    artifacts = [
        (pb.Artifact(type_id=artifact_type, uri=uri, state=getattr(pb.Artifact, artifact_state)),
         pb.Event(type=pb.Event.PENDING_OUTPUT if artifact_state == "PENDING"
                  else pb.Event.OUTPUT))
        for uri, artifact_state in outputs.items()
    ]
    execution_id, _, _ = store.put_execution(execution, artifacts,
                                             store.get_contexts_by_id(contexts))
    return execution_id


def test_stuck_executions_are_canceled_and_their_empty_outputs_removed(tmp_path):
    store = _new_store(tmp_path / "metadata.db")
    pipeline_type = store.put_context_type(pb.ContextType(name="pipeline"))
    ours = _context(store, pipeline_type, "xmodal-retrieval")
    other = _context(store, pipeline_type, "another-pipeline")
    empty = tmp_path / "Trainer" / "model" / "7"
    (empty / "Format-Serving").mkdir(parents=True)  # a tree of folders without files
    partial = tmp_path / "Trainer" / "model_run" / "7"
    partial.mkdir(parents=True)
    (partial / "events.out").write_text("partial")
    finished = tmp_path / "Transform" / "updated_analyzer_cache" / "6"
    finished.mkdir(parents=True)  # a finished execution may publish an empty folder
    done_id = _execution(store, pb.Execution.COMPLETE, [ours], {str(finished): "LIVE"})
    stuck_id = _execution(store, pb.Execution.RUNNING, [ours],
                          {str(empty): "PENDING", str(partial): "PENDING"})
    foreign_id = _execution(store, pb.Execution.RUNNING, [other], {})

    result = recovery.recover_interrupted(store, "xmodal-retrieval")

    assert result.executions == (stuck_id,)
    assert result.removed_dirs == (str(empty),)
    states = {e.id: e.last_known_state for e in store.get_executions()}
    assert states == {done_id: pb.Execution.COMPLETE, stuck_id: pb.Execution.CANCELED,
                      foreign_id: pb.Execution.RUNNING}
    artifacts = {a.uri: a.state for a in store.get_artifacts()}
    assert artifacts == {str(finished): pb.Artifact.LIVE, str(empty): pb.Artifact.ABANDONED,
                         str(partial): pb.Artifact.ABANDONED}
    assert not empty.exists() and (partial / "events.out").is_file() and finished.is_dir()
    assert recovery.recover_interrupted(store, "xmodal-retrieval") == recovery.Recovered()


def test_a_store_without_the_pipeline_is_left_alone(tmp_path):
    store = _new_store(tmp_path / "metadata.db")
    assert recovery.recover_interrupted(store, "xmodal-retrieval") == recovery.Recovered()


def test_output_folders_without_recorded_artifacts_are_found_by_the_tfx_layout(tmp_path):
    """A run killed before ML Metadata recorded its outputs still leaves their empty folders."""
    store = _new_store(tmp_path / "metadata.db")
    ours = _context(store, store.put_context_type(pb.ContextType(name="pipeline")),
                    "xmodal-retrieval")
    stuck_id = _execution(store, pb.Execution.RUNNING, [ours], {})
    empty = tmp_path / "root" / "Trainer" / "model" / str(stuck_id)
    empty.mkdir(parents=True)
    with_file = tmp_path / "root" / "Trainer" / "model_run" / str(stuck_id)
    with_file.mkdir(parents=True)
    (with_file / "events.out").write_text("partial")
    other = tmp_path / "root" / "Trainer" / "model" / str(stuck_id + 100)
    other.mkdir(parents=True)

    result = recovery.recover_interrupted(store, "xmodal-retrieval", str(tmp_path / "root"))

    assert result.executions == (stuck_id,)
    assert result.removed_dirs == (str(empty),)
    assert not empty.exists() and with_file.is_dir() and other.is_dir()
