"""The run summary's ML Metadata reading: node inputs and outputs, and the artifact lineage."""

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import mlmd_summary
from pipeline.summary import lineage_lines


def _store() -> metadata_store.MetadataStore:
    config = mlmd.ConnectionConfig()
    config.fake_database.SetInParent()
    return metadata_store.MetadataStore(config)


def _type_id(store, kind: str, name: str) -> int:
    proto = {"artifact": mlmd.ArtifactType, "execution": mlmd.ExecutionType,
             "context": mlmd.ContextType}[kind](name=name)
    put = getattr(store, f"put_{kind}_type")
    return put(proto)


def _run_with_relevance_handover(store) -> None:
    """RelevanceGen writes a RelevanceMatrix that Evaluator reads, in run ``r1``."""
    relevance_type = _type_id(store, "artifact", "xmodal.RelevanceMatrix")
    examples_type = _type_id(store, "artifact", "Examples")
    [run] = store.put_contexts([mlmd.Context(type_id=_type_id(store, "context", "pipeline_run"),
                                             name="r1")])
    node_type = _type_id(store, "context", "node")
    execution_type = _type_id(store, "execution", "component")
    relevance, examples = store.put_artifacts([
        mlmd.Artifact(type_id=relevance_type, uri="/root/RelevanceGen/relevance/4"),
        mlmd.Artifact(type_id=examples_type, uri="/root/CaptionExampleGen/examples/1")])
    for start, (node, kind) in enumerate((("RelevanceGen", mlmd.Event.OUTPUT),
                                          ("Evaluator", mlmd.Event.INPUT))):
        [ctx] = store.put_contexts([mlmd.Context(type_id=node_type, name=f"xmodal.{node}")])
        execution = mlmd.Execution(type_id=execution_type, create_time_since_epoch=start,
                                   last_known_state=mlmd.Execution.COMPLETE)
        [execution_id] = store.put_executions([execution])
        events = []
        for artifact_id, event_kind, key in ((relevance, kind, "relevance"),
                                             (examples, mlmd.Event.INPUT, "examples")):
            events.append(mlmd.Event(artifact_id=artifact_id, execution_id=execution_id,
                                     type=event_kind))
            events[-1].path.steps.add().key = key
        store.put_events(events)
        store.put_attributions_and_associations([], [
            mlmd.Association(context_id=c, execution_id=execution_id) for c in (run, ctx)])


def test_run_nodes_record_inputs_with_type_names():
    store = _store()
    _run_with_relevance_handover(store)
    nodes = mlmd_summary.run_nodes(store, "r1")
    [matrix] = nodes["Evaluator"].inputs["relevance"]
    assert (matrix.type, matrix.uri) == ("xmodal.RelevanceMatrix", "/root/RelevanceGen/relevance/4")
    assert set(nodes["RelevanceGen"].outputs) == {"relevance"}
    assert set(nodes["RelevanceGen"].inputs) == {"examples"}


def test_lineage_lists_project_artifacts_from_producer_to_consumer():
    store = _store()
    _run_with_relevance_handover(store)
    nodes = mlmd_summary.run_nodes(store, "r1")
    assert mlmd_summary.lineage(nodes, "xmodal.") == [
        ("xmodal.RelevanceMatrix", "RelevanceGen", "Evaluator",
         "/root/RelevanceGen/relevance/4")]
    # Examples came from a node that is not in this run.
    assert ("Examples", "(earlier run)", "Evaluator", "/root/CaptionExampleGen/examples/1") in (
        mlmd_summary.lineage(nodes))
    assert lineage_lines(nodes) == [
        "lineage (ML Metadata):",
        "  xmodal.RelevanceMatrix   RelevanceGen -> Evaluator: /root/RelevanceGen/relevance/4"]
