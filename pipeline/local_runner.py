"""Runs the pipeline locally with LocalDagRunner (Beam DirectRunner) and reports the outcome."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator

from tfx import v1 as tfx

from pipeline import mlmd_summary
from pipeline.config import PipelineConfig

_RUNNING = "Component %s is running."
_FINISHED = "Component %s is finished."
_SKIPPED = "Skipping component %s."


class _ProgressHandler(logging.Handler):
    """Turns LocalDagRunner's per-component log records into one progress line each."""

    def __init__(self, stream) -> None:
        super().__init__(level=logging.INFO)
        self._stream = stream
        self._started: dict[str, float] = {}
        self._t0 = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg not in (_RUNNING, _FINISHED, _SKIPPED) or not record.args:
            return
        node = record.args[0]
        now = time.monotonic()
        if record.msg == _RUNNING:
            self._started[node] = now
            line = f"[{now - self._t0:7.1f}s] {node} ..."
        elif record.msg == _FINISHED:
            line = (
                f"[{now - self._t0:7.1f}s] {node} done in {now - self._started.get(node, now):.1f}s"
            )
        else:
            line = f"[{now - self._t0:7.1f}s] {node} skipped"
        print(line, file=self._stream, flush=True)


@contextlib.contextmanager
def progress_and_log(log_path: str, stream=sys.stdout) -> Iterator[None]:
    """Prints per-component progress and sends TFX's INFO log to ``log_path`` instead of stderr."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    absl_logger = logging.getLogger("absl")
    file_handler = logging.FileHandler(log_path)
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    progress = _ProgressHandler(stream)
    root = logging.getLogger()
    quieted = [(h, h.level) for h in root.handlers]
    for handler, _ in quieted:
        handler.setLevel(logging.WARNING)
    old_level = absl_logger.level
    absl_logger.setLevel(logging.INFO)
    absl_logger.addHandler(file_handler)
    absl_logger.addHandler(progress)
    try:
        yield
    finally:
        absl_logger.removeHandler(progress)
        absl_logger.removeHandler(file_handler)
        absl_logger.setLevel(old_level)
        for handler, level in quieted:
            handler.setLevel(level)
        file_handler.close()


def run_pipeline(pipeline: tfx.dsl.Pipeline, config: PipelineConfig) -> str:
    """Runs ``pipeline`` with LocalDagRunner; returns the run id it got in ML Metadata.

    A failing component raises its own error; the full TFX log is in
    ``<pipeline_root>/logs/``, and its path is printed before the run starts.
    """
    log_path = os.path.join(config.pipeline_root, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))
    print(f"TFX log: {log_path}", flush=True)
    store_before = _known_runs(config)
    with progress_and_log(log_path):
        tfx.orchestration.LocalDagRunner().run(pipeline)
    runs = mlmd_summary.pipeline_runs(_store(config), config.pipeline_name)
    new_runs = [r for r in runs if r not in store_before]
    if not new_runs:
        raise RuntimeError(f"no pipeline run recorded in {config.metadata_db}")
    return new_runs[-1]


def _store(config: PipelineConfig):
    return mlmd_summary.open_store(config.metadata_db)


def _known_runs(config: PipelineConfig) -> set[str]:
    if not os.path.exists(config.metadata_db):
        return set()
    return set(mlmd_summary.pipeline_runs(_store(config), config.pipeline_name))
