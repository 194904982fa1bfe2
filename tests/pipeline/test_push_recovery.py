"""A Pusher that failed or was killed: the re-run pushes the blessed model (slow, real pipeline).

Every run goes through the real entry point, ``python -m pipeline run|retrain``, on the small
generated dataset with a quick token tower.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.caption_example_gen.synthetic import write_synthetic_dataset
from pipeline import config as config_lib
from pipeline import mlmd_summary

pytestmark = pytest.mark.e2e

MODEL = "xmodal"
QUICK = ["trainer.text_tower=mean", "trainer.embedding_dim=32", "trainer.word_dim=32",
         "trainer.epochs=2", "trainer.batch_size=64"]
RUN_TIMEOUT_S = 1500


def _argv(command: str, data: pathlib.Path, tmp_path: pathlib.Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", command, "--data", str(data),
            "--pipeline-root", str(tmp_path / "root"), "--serving-dir", str(tmp_path / "serving"),
            "--set", *QUICK]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def _kill_when_the_push_builds(argv: list[str], serving: pathlib.Path, log: pathlib.Path) -> None:
    """Starts ``argv`` and SIGKILLs its process group once a push build folder appears."""
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (serving.is_dir() and any(p.name.startswith(".build-")
                                            for p in serving.iterdir())):
            assert proc.poll() is None, "the run ended before its Pusher built:\n" + log.read_text()
            assert time.monotonic() < deadline, "the Pusher never started"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _served(serving: pathlib.Path) -> dict[str, list[str]]:
    """Every entry of the serving folder: ``{name: sorted entries}`` for folders, [] for files."""
    return {p.name: sorted(c.name for c in p.iterdir()) if p.is_dir() else []
            for p in serving.iterdir()}


def _config_models(serving: pathlib.Path) -> list[tuple[str, str]]:
    text = (serving / "models.config").read_text()
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    return [(c.name, c.base_path) for c in parsed.model_config_list.config]


def _last_run(tmp_path: pathlib.Path) -> dict[str, mlmd_summary.NodeRun]:
    store = mlmd_summary.open_store(str(tmp_path / "root" / "metadata.db"))
    runs = mlmd_summary.pipeline_runs(store, config_lib.PipelineConfig().pipeline_name)
    return mlmd_summary.run_nodes(store, runs[-1])


def _assert_pushed_once(serving: pathlib.Path, out: subprocess.CompletedProcess) -> str:
    """The one version served, after a run that pushed it; nothing else in the folder."""
    assert out.returncode == 0, out.stdout + out.stderr
    (version,) = _served(serving)[MODEL]
    assert f"pushed: version {version} -> {serving / MODEL / version}" in out.stdout, out.stdout
    assert _served(serving) == {"models.config": [], MODEL: [version],
                                f"{MODEL}_search": [version]}
    assert _config_models(serving) == [(MODEL, f"/models/{MODEL}"),
                                       (f"{MODEL}_search", f"/models/{MODEL}_search")]
    return version


@pytest.mark.slow(minutes=12)
def test_killed_in_the_pusher_then_rerun_pushes_the_blessed_model(tmp_path,
                                                                 shipped_image_backbone):
    data, serving = tmp_path / "data", tmp_path / "serving"
    write_synthetic_dataset(str(data))
    argv = _argv("run", data, tmp_path)
    _kill_when_the_push_builds(argv, serving, tmp_path / "killed.log")
    assert [p.name for p in serving.iterdir() if p.name.startswith(".build-")]
    assert not (serving / MODEL).is_dir() or not os.listdir(serving / MODEL)

    out = _run(argv)
    assert "an earlier run was interrupted" in out.stdout, out.stdout + out.stderr
    assert "blessing: BLESSED" in out.stdout, out.stdout
    version = _assert_pushed_once(serving, out)
    nodes = _last_run(tmp_path)
    assert nodes["Trainer"].state == "cached" and nodes["Pusher"].state == "ran"

    # Nothing new: the candidate is the served baseline itself; not pushed again, exit 0.
    again = _run(argv)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "blessing: NOT_BLESSED (candidate is the baseline model itself" in again.stdout
    assert "pushed: nothing (model not blessed)" in again.stdout, again.stdout
    assert _served(serving)[MODEL] == [version]


@pytest.mark.slow(minutes=9)
def test_retrain_after_a_failed_push_pushes_once_the_cause_is_fixed(tmp_path,
                                                                   shipped_image_backbone):
    data, serving = tmp_path / "drops", tmp_path / "serving"
    write_synthetic_dataset(str(data / "span-1"))
    serving.mkdir()
    (serving / "models.config").write_text("model_config_list { config { name: ")  # cut short
    argv = _argv("retrain", data, tmp_path)

    failed = _run(argv)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failed.stderr.startswith("error: "), failed.stderr
    nodes = _last_run(tmp_path)
    assert nodes["Evaluator"].state == "ran" and nodes["Pusher"].state == "FAILED"

    (serving / "models.config").unlink()
    fixed = _run(argv)
    assert "retrain: processing span 1" in fixed.stdout, fixed.stdout + fixed.stderr
    assert "blessing: BLESSED" in fixed.stdout, fixed.stdout
    version = _assert_pushed_once(serving, fixed)

    done = _run(argv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "newest span 1 was already processed; nothing to do" in done.stdout
    assert _served(serving)[MODEL] == [version]
