"""Reads a pipeline run back from ML Metadata: what ran, what was cached, blessing and push."""

from __future__ import annotations

import dataclasses

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "ran",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "FAILED",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.CANCELED: "canceled",
    metadata_store_pb2.Execution.NEW: "new",
}


@dataclasses.dataclass(frozen=True)
class NodeRun:
    """One node's execution in a pipeline run.

    Attributes:
      node_id: the TFX node id (e.g. ``Trainer``).
      state: ``ran``, ``cached``, ``FAILED``, ...
      seconds: wall time of the execution (0 for cached ones).
      started: creation time of the execution, ms since the epoch.
      outputs: output key -> artifacts (MLMD protos) of the execution.
      inputs: input key -> artifacts it read (``type`` filled in with the type name).

    """

    node_id: str
    state: str
    seconds: float
    started: int
    outputs: dict[str, list[metadata_store_pb2.Artifact]]
    inputs: dict[str, list[metadata_store_pb2.Artifact]] = dataclasses.field(
        default_factory=dict)


def open_store(metadata_db: str) -> metadata_store.MetadataStore:
    """Opens the SQLite ML Metadata store read-write (as TFX does)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_db
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def pipeline_runs(store: metadata_store.MetadataStore, pipeline_name: str) -> list[str]:
    """The run ids of ``pipeline_name``, oldest first."""
    runs = store.get_contexts_by_type("pipeline_run")
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_ctx is None:
        return []
    in_pipeline = {e.id for e in store.get_executions_by_context(pipeline_ctx.id)}
    ordered = []
    for ctx in sorted(runs, key=lambda c: c.create_time_since_epoch):
        if {e.id for e in store.get_executions_by_context(ctx.id)} & in_pipeline:
            ordered.append(ctx.name)
    return ordered


def run_nodes(store: metadata_store.MetadataStore, run_id: str) -> dict[str, NodeRun]:
    """Every node execution of pipeline run ``run_id``, keyed by node id."""
    ctx = store.get_context_by_type_and_name("pipeline_run", run_id)
    if ctx is None:
        raise KeyError(f"no pipeline run '{run_id}' in ML Metadata")
    nodes = {}
    for execution in store.get_executions_by_context(ctx.id):
        node_id = _node_id(store, execution)
        seconds = (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch
        ) / 1000.0
        nodes[node_id] = NodeRun(
            node_id=node_id,
            state=_STATE_NAMES.get(execution.last_known_state, "unknown"),
            seconds=seconds,
            started=execution.create_time_since_epoch,
            outputs=_artifacts(store, execution.id, _OUTPUT_EVENTS),
            inputs=_artifacts(store, execution.id, _INPUT_EVENTS),
        )
    return nodes


def _node_id(store: metadata_store.MetadataStore, execution) -> str:
    for ctx in store.get_contexts_by_execution(execution.id):
        node_type = store.get_context_types_by_id([ctx.type_id])[0].name
        if node_type == "node":
            return ctx.name.split(".", 1)[-1]
    return str(execution.id)


_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.PENDING_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT,)


def _artifacts(store, execution_id: int,
               kinds: tuple[int, ...]) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """Key -> artifacts of the execution's events of ``kinds``, with their type names set."""
    events = store.get_events_by_execution_ids([execution_id])
    by_key: dict[str, list[int]] = {}
    for event in events:
        if event.type in kinds:
            key = event.path.steps[0].key if event.path.steps else ""
            by_key.setdefault(key, []).append(event.artifact_id)
    result = {key: list(store.get_artifacts_by_id(ids)) for key, ids in by_key.items()}
    for artifacts in result.values():
        for artifact in artifacts:
            if not artifact.type:
                artifact.type = store.get_artifact_types_by_id([artifact.type_id])[0].name
    return result


def lineage(nodes: dict[str, NodeRun], type_prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(type name, producer node, consumer node, uri)`` of every artifact handed over in a run.

    Args:
      nodes: the run's node executions (``run_nodes``).
      type_prefix: only artifact types whose name starts with it (e.g. ``xmodal.``).

    """
    producers = {artifact.id: node.node_id for node in nodes.values()
                 for artifacts in node.outputs.values() for artifact in artifacts}
    found = []
    for node in sorted(nodes.values(), key=lambda n: n.started):
        for artifacts in node.inputs.values():
            found += [(a.type, producers.get(a.id, "(earlier run)"), node.node_id, a.uri)
                      for a in artifacts if a.type.startswith(type_prefix)]
    return found


def custom_property(artifact: metadata_store_pb2.Artifact, name: str):
    """An artifact's custom property value (int, float or string), or None."""
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
