"""Runs the pipeline locally with LocalDagRunner (Beam DirectRunner) and reports the outcome."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator

from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.pipeline import Pipeline
from tfx.orchestration.portable import launcher

from pipeline import mlmd_summary
from pipeline.config import PipelineConfig
from pipeline.console import new_log_path


class _Progress:
    """Prints one line when each node starts (the summary gives each node's state and time)."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._t0 = time.monotonic()

    def line(self, text: str) -> None:
        print(f"[{time.monotonic() - self._t0:7.1f}s] {text}", file=self._stream, flush=True)


@contextlib.contextmanager
def progress_and_log(log_path: str, stream=None) -> Iterator[None]:
    """Prints per-component progress and sends TFX's INFO log to ``log_path`` instead of stderr.

    The progress hook wraps the portable ``Launcher.launch`` that LocalDagRunner calls once per
    node, rather than parsing log records: libraries loaded during the run (Transform, TFMA) may
    reconfigure or disable the ``absl`` logger, which would silence log-based progress.
    ``stream`` defaults to the ``sys.stdout`` of the call, not of the import: a caller (pytest's
    capture, a notebook) may have replaced it since.
    """
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    absl_logger = logging.getLogger("absl")
    file_handler = logging.FileHandler(log_path)
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    quieted = [(h, h.level) for h in root.handlers]
    for handler, _ in quieted:
        handler.setLevel(logging.WARNING)
    absl_logger.addHandler(file_handler)
    old_level = absl_logger.level
    absl_logger.setLevel(logging.INFO)
    progress = _Progress(stream or sys.stdout)
    original_launch = launcher.Launcher.launch

    def launch(self, *args, **kwargs):
        absl_logger.disabled = False
        absl_logger.setLevel(logging.INFO)
        node_id = self._pipeline_node.node_info.id  # noqa: SLF001  (TFX keeps it private)
        progress.line(f"{node_id} ...")
        return original_launch(self, *args, **kwargs)

    launcher.Launcher.launch = launch
    try:
        yield
    finally:
        launcher.Launcher.launch = original_launch
        absl_logger.removeHandler(file_handler)
        absl_logger.setLevel(old_level)
        for handler, level in quieted:
            handler.setLevel(level)
        file_handler.close()


def run_pipeline(
    pipeline: Pipeline, config: PipelineConfig, log_path: str | None = None
) -> str:
    """Runs ``pipeline`` with LocalDagRunner; returns the run id it got in ML Metadata.

    A failing component raises its own error; the full TFX log goes to ``log_path`` (default: a
    new file under ``<pipeline_root>/logs/``), whose path is printed before the run starts.
    """
    log_path = log_path or new_log_path(config.pipeline_root)
    print(f"TFX log: {log_path}", flush=True)
    store_before = _known_runs(config)
    with progress_and_log(log_path):
        LocalDagRunner().run(pipeline)
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
