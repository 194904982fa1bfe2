"""``python -m pipeline run`` and ``python -m pipeline retrain`` (LocalDagRunner).

Both hold an exclusive lock on the pipeline root for the whole run, taken before TFX is imported
(that import takes a minute): a second invocation on the same root exits at once with code 75
(EX_TEMPFAIL), and under the lock the leftovers of an interrupted run can be cleaned up safely.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator

from pipeline import data as data_lib
from pipeline import mlmd_summary, recovery
from pipeline.config import PipelineConfig
from pipeline.reindex import reindex_after_push
from pipeline.summary import format_summary, unserved_model_error

EXAMPLE_GEN_ID = "CaptionExampleGen"
PUSHER_ID = "Pusher"
LOCK_NAME = ".pipeline.lock"
EX_TEMPFAIL = 75
_SPAN_DIR = re.compile(r"^span-(\d+)$")


def run(config: PipelineConfig, *, log_path: str | None = None) -> int:
    """Runs the whole pipeline once and prints the summary; returns the exit code.

    Args:
      config: the validated configuration.
      log_path: the TFX log file (default: a new one under ``<pipeline_root>/logs``).

    """
    with pipeline_lock(config) as acquired:
        if not acquired:
            print(f"run: another run holds the lock on {config.pipeline_root}; exiting", flush=True)
            return EX_TEMPFAIL
        return _run_locked(config, retraining=False, log_path=log_path)


def retrain(config: PipelineConfig, *, log_path: str | None = None) -> int:
    """Scheduled retraining: the newest span, warm-started, pushed only if blessed.

    Safe to run from cron: a second invocation exits at once with code 75 (the lock), and when
    the newest span was already processed it does nothing at all.
    """
    if not config.data_dir:
        raise ValueError("retrain needs --data: a folder of span-<N>/ data drops")
    with pipeline_lock(config) as acquired:
        if not acquired:
            print("retrain: another retrain holds the lock; exiting without work", flush=True)
            return EX_TEMPFAIL
        newest = newest_span(config.data_dir)
        if newest is None:
            raise ValueError(f"retrain: {config.data_dir} has no span-<N>/ folders, and retrain "
                             "trains only on a new span; lay each data drop out as span-<N>/ "
                             "there, or train on one dataset with `run`")
        done = processed_spans(config)
        if newest in done:
            print(f"retrain: newest span {newest} was already processed; nothing to do")
            return 0
        print(f"retrain: processing span {newest} (processed before: {sorted(done) or 'none'})")
        return _run_locked(config, retraining=True, log_path=log_path)


def _run_locked(config: PipelineConfig, *, retraining: bool, log_path: str | None) -> int:
    from pipeline import local_runner  # heavy (TFX): only once the lock is held
    from pipeline.pipeline import Orchestration, create_pipeline, local_metadata_config

    config.validate()
    if config.note:
        print(config.note, flush=True)
    _recover(config)
    resolved = data_lib.resolve(config)
    print(resolved.description, flush=True)
    pipeline = create_pipeline(config, resolved, Orchestration(
        retraining=retraining, metadata_connection_config=local_metadata_config(config)))
    run_id = local_runner.run_pipeline(pipeline, config, log_path=log_path)
    nodes = mlmd_summary.run_nodes(mlmd_summary.open_store(config.metadata_db), run_id)
    print(format_summary(nodes, config.pipeline_root), flush=True)
    error = unserved_model_error(nodes, config.serving_dir, config.model_name)
    if error:
        print(f"error: {error}", flush=True)
        return 1
    return reindex_after_push(config, nodes)


def _recover(config: PipelineConfig) -> None:
    """Cleans up what an interrupted earlier run left behind, and says so."""
    if not os.path.exists(config.metadata_db):
        return
    store = mlmd_summary.open_store(config.metadata_db)
    done = recovery.recover_interrupted(store, config.pipeline_name, config.pipeline_root)
    if done.executions:
        print(f"an earlier run was interrupted: marked {len(done.executions)} execution(s) "
              f"canceled, removed {len(done.removed_dirs)} empty output folder(s)", flush=True)


@contextlib.contextmanager
def pipeline_lock(config: PipelineConfig) -> Iterator[bool]:
    """The exclusive lock of ``config.pipeline_root`` (created if needed); yields if acquired."""
    os.makedirs(config.pipeline_root, exist_ok=True)
    with exclusive_lock(os.path.join(config.pipeline_root, LOCK_NAME)) as acquired:
        yield acquired


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[bool]:
    """A non-blocking exclusive file lock; yields whether it was acquired."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def newest_span(data_dir: str) -> int | None:
    """The largest N of the ``span-N`` folders in ``data_dir`` (None when it has none)."""
    spans = [int(m.group(1)) for m in map(_SPAN_DIR.match, os.listdir(data_dir)) if m]
    return max(spans) if spans else None


def processed_spans(config: PipelineConfig) -> set[int]:
    """Spans of the runs that got through to the end of the Pusher (from ML Metadata).

    A run that failed or was killed before its Pusher finished leaves its span unprocessed, so
    that the next ``retrain`` runs it again (its finished components from cache) and pushes.
    """
    if not os.path.exists(config.metadata_db):
        return set()
    store = mlmd_summary.open_store(config.metadata_db)
    spans = set()
    for run_id in mlmd_summary.pipeline_runs(store, config.pipeline_name):
        nodes = mlmd_summary.run_nodes(store, run_id)
        node, pusher = nodes.get(EXAMPLE_GEN_ID), nodes.get(PUSHER_ID)
        if not all(n is not None and n.state in ("ran", "cached") for n in (node, pusher)):
            continue
        for artifact in node.outputs.get("examples", []):
            span = mlmd_summary.custom_property(artifact, "span")  # TFX 1.16 keeps it custom
            if span is not None:
                spans.add(int(span))
    return spans
