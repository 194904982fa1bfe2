"""Every training entry point builds its strategy first and trains on a cluster of 2 workers.

A cluster's ``MultiWorkerMirroredStrategy`` configures TensorFlow's collective ops, which
TensorFlow accepts only before its runtime has run an op. The fast tests run each entry point
(``run_fn``, ``benchmarks.train_quality``) in a fresh process under a 2-worker ``TF_CONFIG`` up
to its strategy, with TensorFlow's own check in the strategy's place. The slow ones run the
commands of docs/distributed.md on a small cut of Flickr8k, and ``run_fn`` with ``FnArgs`` as
TFX's Trainer builds them, each on 2 worker processes on 127.0.0.1 to the end.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.slices import write_flickr_slice
from trainer import distribute_run

REPO = pathlib.Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "distributed.md"
TRAIN_IMAGES, DEV_IMAGES = 150, 60
TABLE_ROW = re.compile(r"^\| [\d. |]+\|$", re.MULTILINE)  # train_quality's metrics row
# Each epoch's line: its eval scores, and its mean training loss.
EPOCH_EVAL = re.compile(r"^epoch (\d+) \(.*\) loss \S+ eval: (.*)$", re.MULTILINE)
EPOCH_LOSS = re.compile(r"^epoch \d+ \(.*\) loss ([\d.]+) eval: ", re.MULTILINE)

STRATEGY_FIRST = """
import sys, types
from tensorflow.python.eager import context
import tensorflow as tf

class StrategyBuilt(Exception):
    pass

def check():  # TensorFlow's own check: it raises once the process has run a TensorFlow op
    context.context().configure_collective_ops(collective_leader="/job:worker/replica:0/task:0")

def strategy():
    check()
    raise StrategyBuilt

tf.distribute.MultiWorkerMirroredStrategy = strategy
if sys.argv[1] == "run_fn":
    from trainer import task
    start = lambda: task.run_fn(types.SimpleNamespace(custom_config={"epochs": 1}))
else:
    from benchmarks import train_quality
    start = lambda: train_quality.main(["--data", "/nonexistent", "--set", "epochs=1"])
built = False
try:
    start()
except StrategyBuilt:
    built = True
    print("strategy built before any other TensorFlow op")
finally:
    if not built:  # stopped before its strategy: did it run TensorFlow ops first?
        check()
"""


def _env(tmp: pathlib.Path | None = None) -> dict[str, str]:
    """The workers' environment; ``tmp`` as their temporary folder (logs, non-chief copies)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_USE_LEGACY_KERAS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    return env if tmp is None else {**env, "TMPDIR": str(tmp)}


@pytest.mark.parametrize("entry_point", ["run_fn", "train_quality"])
def test_entry_points_build_the_cluster_strategy_before_any_other_tensorflow_op(entry_point):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    env = {**_env(), "TF_CONFIG": json.dumps({"cluster": cluster,
                                              "task": {"type": "worker", "index": 0}})}
    done = subprocess.run([sys.executable, "-c", STRATEGY_FIRST, entry_point], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "strategy built before any other TensorFlow op" in done.stdout


# --- slow: the documented commands and run_fn, each on 2 workers ---


def documented_commands() -> list[list[str]]:
    """The commands of docs/distributed.md's "Two workers on one machine", as argument lists."""
    section = DOC.read_text().split("## Two workers on one machine", 1)[1].split("\n## ", 1)[0]
    block = section.replace("\\\n", " ")
    return [shlex.split(line) for line in block.splitlines()
            if line.strip().startswith("python -m")]


def as_test_command(command: list[str], data: pathlib.Path, work_dir: pathlib.Path,
                    extra: tuple[str, ...] = ()) -> list[str]:
    """``command`` with this interpreter, the cut of Flickr8k, ``work_dir`` and ``extra`` --set."""
    out = [sys.executable if word == "python" else word for word in command]
    out[out.index("--work-dir") + 1] = str(work_dir)
    out.insert(out.index("benchmarks.train_quality") + 1, f"--data={data}")
    return out + list(extra)


def run_bounded(command: list[str], env: dict[str, str], timeout: float) -> str:
    """Runs ``command``; its stdout. Past ``timeout``, SIGINT (the launcher stops its workers)."""
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        pytest.fail(f"{command[:4]} ran past {timeout} s:\n{out[-3000:]}")
    assert process.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def one_process(flickr8k_dir, tmp_path_factory) -> dict:
    """The cut of Flickr8k, and the doc's first command run on it (Transform + 1 process)."""
    commands = documented_commands()
    assert [c[:4] for c in commands] == [
        ["python", "-m", "benchmarks.train_quality", "--work-dir"],
        ["python", "-m", "trainer.distribute_run", "--workers"]]
    root = tmp_path_factory.mktemp("distribute_entry_points")
    data = write_flickr_slice(flickr8k_dir, root / "flickr8k", n_train=TRAIN_IMAGES,
                              n_eval=DEV_IMAGES)
    (root / "tmp").mkdir()
    out = run_bounded(as_test_command(commands[0], data, root / "work"), _env(root / "tmp"),
                      timeout=420)
    return {"root": root, "data": data, "commands": commands, "out": out}


def assert_trains_as_one_process(log: str, one_process_out: str) -> None:
    """The epoch losses of ``log`` are those of the one process (printed to 1e-4).

    Workers that step on their slices of the one process's global batches reach its towers up
    to float rounding (``test_distribute``); the evaluations that rank their embeddings can
    differ by an item whose scores tie within that rounding, so they are not compared.
    """
    expected = [float(loss) for loss in EPOCH_LOSS.findall(one_process_out)]
    assert len(expected) == 2, one_process_out[-3000:]
    assert [float(loss) for loss in EPOCH_LOSS.findall(log)] == pytest.approx(expected, abs=1e-4)


def _exports(folder: pathlib.Path) -> list[pathlib.Path]:
    """SavedModels under ``folder``, the Transform's own aside."""
    return sorted(path.parent for path in folder.rglob("saved_model.pb")
                  if "transform_fn" not in path.parts)


@pytest.mark.slow(minutes=4)
@pytest.mark.parametrize("stream", [False, True], ids=["memory", "stream"])
def test_documented_two_worker_command_trains_to_the_end_and_the_chief_exports_once(
        one_process, stream):
    root, work = one_process["root"], one_process["root"] / "work"
    extra = ("input=stream",) if stream else ()
    command = as_test_command(one_process["commands"][1], one_process["data"], work, extra)
    start = time.time()
    out = run_bounded(command, _env(root / "tmp"), timeout=600)
    assert "2 workers finished" in out
    logs = [(root / "tmp" / "xmodal_workers" / f"worker_{i}.log").read_text() for i in (0, 1)]
    rows = [TABLE_ROW.findall(log) for log in logs]
    assert all(len(found) == 1 for found in rows), logs[1][-3000:]
    evals = [EPOCH_EVAL.findall(log) for log in logs]
    assert [epoch for epoch, _ in evals[0]] == ["1", "2"]
    assert rows[0] == rows[1] and evals[0] == evals[1]  # the same synchronized towers
    if not stream:  # from memory the workers step on the one process's global batches
        assert_trains_as_one_process(logs[0], one_process["out"])
    assert _exports(work) == [work / "last" / "export"]
    assert (work / "last" / "export" / "saved_model.pb").stat().st_mtime > start
    assert not list((root / "tmp").glob("xmodal_worker_*"))  # non-chief copies removed


@pytest.mark.slow(minutes=3)
def test_run_fn_of_the_tfx_trainer_trains_on_two_workers_and_the_chief_exports_once(
        one_process, tmp_path):
    # the token tower's Transform, cached by the documented command (no WordPiece ids)
    (transformed,) = (one_process["root"] / "work").glob("transformed*")
    examples = tmp_path / "examples"
    for split in ("train", "eval"):
        shutil.copytree(transformed / split, examples / f"Split-{split}")
    (tmp_path / "tmp").mkdir()
    settings = json.dumps({"epochs": 2, "text_tower": "mean"})
    command = [sys.executable, "-m", "tests.trainer.tfx_trainer_worker", str(examples),
               str(transformed / "transform"), str(tmp_path / "out"), settings]
    distribute_run.run_workers(command, 2, tmp_path / "logs", timeout=540,
                               env=_env(tmp_path / "tmp"))
    logs = [(tmp_path / "logs" / f"worker_{i}.log").read_text() for i in (0, 1)]
    for log in logs:
        assert "host: " in log and "text tower 'mean'" in log  # run_fn's setting line
    evals = [EPOCH_EVAL.findall(log) for log in logs]
    assert [epoch for epoch, _ in evals[0]] == ["1", "2"] and evals[0] == evals[1]
    # run_fn trains as train_quality's one process did: the same function, Transform and data
    assert_trains_as_one_process(logs[0], one_process["out"])
    serving = tmp_path / "out" / "model" / "Format-Serving"
    assert _exports(tmp_path / "out") == [serving]
    assert list((tmp_path / "out" / "model_run").glob("logs/*"))
    assert not list((tmp_path / "tmp").glob("xmodal_worker_*"))
