"""Cleans up after an interrupted run before the next one starts.

A run killed mid-component (Ctrl-C, OOM, a reboot) leaves its executions in ML Metadata in state
RUNNING (or NEW) forever, with PENDING output artifacts whose folders TFX created up front (e.g.
``<root>/Trainer/model/<execution id>/``) and that are still empty. The next run marks those
executions CANCELED and their unpublished artifacts ABANDONED, so that reports and tools that read
ML Metadata see what happened, and removes the empty folders. Folders with files in them are kept:
they may hold partial output worth inspecting. Call it only while holding the pipeline root's
lock (``pipeline.run``): the executions of a live run are RUNNING too.
"""

from __future__ import annotations

import dataclasses
import glob
import os

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_Execution = metadata_store_pb2.Execution
_Artifact = metadata_store_pb2.Artifact
_STUCK = (_Execution.RUNNING, _Execution.NEW)
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.PENDING_OUTPUT)


@dataclasses.dataclass(frozen=True)
class Recovered:
    """What ``recover_interrupted`` changed.

    Attributes:
      executions: ids of the executions marked CANCELED.
      removed_dirs: the empty output folders that were removed.

    """

    executions: tuple[int, ...] = ()
    removed_dirs: tuple[str, ...] = ()


def recover_interrupted(store: metadata_store.MetadataStore, pipeline_name: str,
                        pipeline_root: str | None = None) -> Recovered:
    """Marks the stuck executions of ``pipeline_name`` CANCELED and removes their empty outputs.

    Args:
      store: the pipeline's ML Metadata store.
      pipeline_name: the TFX pipeline name (its ``pipeline`` context).
      pipeline_root: where TFX lays outputs out as ``<root>/<node id>/<output key>/<execution
        id>``. A run killed mid-component may have created those folders before ML Metadata
        recorded any output artifact for them, so they are looked up by that layout too.

    Returns:
      The executions marked and the folders removed (both empty when nothing was stuck).

    """
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if context is None:
        return Recovered()
    stuck = [e for e in store.get_executions_by_context(context.id) if e.last_known_state in _STUCK]
    if not stuck:
        return Recovered()
    for execution in stuck:
        execution.last_known_state = _Execution.CANCELED
    store.put_executions(stuck)
    events = store.get_events_by_execution_ids([e.id for e in stuck])
    artifact_ids = sorted({ev.artifact_id for ev in events if ev.type in _OUTPUT_EVENTS})
    artifacts = list(store.get_artifacts_by_id(artifact_ids)) if artifact_ids else []
    pending = [a for a in artifacts if a.state in (_Artifact.PENDING, _Artifact.UNKNOWN)]
    for artifact in pending:
        artifact.state = _Artifact.ABANDONED
    if pending:
        store.put_artifacts(pending)
    folders = {a.uri for a in pending}
    if pipeline_root:
        for execution in stuck:
            folders.update(glob.glob(os.path.join(pipeline_root, "*", "*", str(execution.id))))
    removed = tuple(path for path in sorted(folders) if _remove_if_empty(path))
    return Recovered(tuple(e.id for e in stuck), removed)


def _remove_if_empty(path: str) -> bool:
    """Removes ``path`` when it is a folder tree without any file; returns whether it did."""
    if not path or not os.path.isdir(path):
        return False
    for _, _, files in os.walk(path):
        if files:
            return False
    for root, _, _ in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
        os.rmdir(root)
    return True
