"""Keeping the collection index in step with the served encoder after ``run`` and ``retrain``.

Embeddings of two encoder versions are not comparable, so when ``index.collection`` is
configured and this run's Pusher pushed a new version, the collection is indexed again with it
(``serving.collection.build``; photos unchanged since the last index of that version are not
re-embedded). A run whose Pusher pushed nothing leaves the index as it is: it was made by the
version still served.
"""

from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.mlmd_summary import NodeRun, custom_property

PUSHER_ID = "Pusher"


def pushed_version(nodes: dict[str, NodeRun]) -> int | None:
    """The version this run's Pusher pushed; None when it did not run or pushed nothing."""
    pusher = nodes.get(PUSHER_ID)
    if pusher is None or pusher.state != "ran":
        return None
    for artifacts in pusher.outputs.values():
        for artifact in artifacts:
            if custom_property(artifact, "pushed") == 1:
                return int(custom_property(artifact, "pushed_version"))
    return None


def reindex_after_push(config: PipelineConfig, nodes: dict[str, NodeRun]) -> int:
    """Re-indexes ``config.index.collection`` if this run pushed; returns the exit code.

    Returns:
        0 when nothing is configured, nothing was pushed, or the index was published (or was
        already up to date); 1 when indexing failed (the line says why and how to retry).

    """
    if not config.index.collection:
        return 0
    version = pushed_version(nodes)
    if version is None:
        print(f"index: nothing pushed, index {config.index.name!r} kept", flush=True)
        return 0
    from serving.collection import build
    from serving.collection.cli import summary_line

    request = build.IndexRequest(config.index.collection, config.index.name,
                                 config.serving_dir, config.model_name, config.index.captions,
                                 tuple(config.beam_args))
    try:
        result = build.build_index(request)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: index: {err}; the served version {version} has no index of "
              f"{config.index.collection}: fix it and run {build.rebuild_command(request)}",
              flush=True)
        return 1
    print(f"index: {summary_line(result)}", flush=True)
    return 0
