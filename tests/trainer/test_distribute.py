"""Multi-worker training: TF_CONFIG checks, the local cluster launcher, and 2 workers = 1 process.

The cluster tests start real processes on 127.0.0.1 (free ports, ``TF_CONFIG``, CPU) through
``trainer.distribute_run``, which stops every worker when one fails or at its timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from trainer import distribute_run
from trainer.config import TrainerConfig
from trainer.train import distribute

CLUSTER = {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}


def _tf_config(**values) -> str:
    return json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}, **values})


@pytest.mark.parametrize("text, message", [
    ("{not json", r"TF_CONFIG: not valid JSON"),
    ('["a"]', r"TF_CONFIG: must be a JSON object"),
    (json.dumps({"cluster": CLUSTER}), r"TF_CONFIG: task: missing"),
    (_tf_config(task={"type": "worker", "index": 2}),
     r"TF_CONFIG: task.index: 2 is out of range for the 2 'worker' task\(s\)"),
    (_tf_config(task={"type": "worker", "index": "1"}), r"TF_CONFIG: task.index: must be an"),
    (_tf_config(task={"type": "ps", "index": 0}), r"TF_CONFIG: task.type: 'ps' is not"),
    (json.dumps({"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}),
     r"TF_CONFIG: cluster.worker: must be a non-empty list"),
    (json.dumps({"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}),
     r"TF_CONFIG: cluster.ps: unsupported task type"),
])
def test_malformed_tf_config_names_the_key(text, message):
    with pytest.raises(ValueError, match=message):
        distribute.parse_tf_config(text)


def test_tf_config_without_cluster_means_one_process():
    assert distribute.parse_tf_config(None) is None
    assert distribute.parse_tf_config("") is None
    assert distribute.parse_tf_config(json.dumps({"task": {"type": "worker"}})) is None
    assert distribute.parse_tf_config(_tf_config())["task"]["index"] == 1


def test_only_the_chief_or_worker_zero_exports():
    worker = {"cluster": CLUSTER, "task": {"type": "worker", "index": 0}}
    assert distribute.is_chief(None)
    assert distribute.is_chief(worker)
    assert not distribute.is_chief({**worker, "task": {"type": "worker", "index": 1}})
    with_chief = {"cluster": {**CLUSTER, "chief": ["127.0.0.1:2224"]}, "task": worker["task"]}
    assert not distribute.is_chief(with_chief)
    assert distribute.is_chief({**with_chief, "task": {"type": "chief", "index": 0}})


def test_non_chief_workers_write_to_a_temporary_folder_that_is_removed(tmp_path):
    with distribute.worker_dir(str(tmp_path / "export"), chief=True) as path:
        assert path == str(tmp_path / "export")
    with distribute.worker_dir(str(tmp_path / "export"), chief=False) as path:
        assert not path.startswith(str(tmp_path))
        open(os.path.join(path, "f"), "w").close()
    assert not os.path.exists(path)


def test_config_hash_changes_with_any_field():
    base = TrainerConfig()
    assert distribute.config_hash(base) == distribute.config_hash(TrainerConfig())
    assert distribute.config_hash(base) != distribute.config_hash(TrainerConfig(seed=1))
    assert 0 <= distribute.config_hash(base) < 2 ** 63


def test_without_tf_config_there_is_no_strategy(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.strategy_for(TrainerConfig()) is tf.distribute.get_strategy()
    monkeypatch.setenv("TF_CONFIG", "{oops")
    with pytest.raises(ValueError, match="TF_CONFIG: not valid JSON"):
        distribute.strategy_for(TrainerConfig())


def test_tf_config_of_each_worker_names_the_whole_cluster():
    ports = distribute_run.free_ports(3)
    assert len(set(ports)) == 3
    config = distribute.parse_tf_config(distribute_run.tf_config(ports, 2))
    assert config["cluster"]["worker"] == [f"127.0.0.1:{port}" for port in ports]
    assert config["task"] == {"type": "worker", "index": 2}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_failing_worker_stops_the_others(tmp_path):
    script = ("import json, os, sys, time\n"
              "index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
              "print(os.getpid(), flush=True)\n"
              "sys.exit('worker one fails') if index == 1 else time.sleep(60)\n")
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(?s)worker 1 exited with 1:\n.*worker one fails"):
        distribute_run.run_workers([sys.executable, "-c", script], 2, tmp_path, timeout=30)
    assert time.monotonic() - start < 20
    sleeper = int((tmp_path / "worker_0.log").read_text().split()[0])
    assert not _alive(sleeper)


def test_a_cluster_past_its_timeout_is_stopped(tmp_path):
    script = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    with pytest.raises(RuntimeError, match="ran past its timeout"):
        distribute_run.run_workers([sys.executable, "-c", script], 2, tmp_path, timeout=2)
    for index in range(2):
        pid = int((tmp_path / f"worker_{index}.log").read_text().split()[0])
        assert not _alive(pid)


# --- 2 worker processes vs 1 process (tests/trainer/distribute_steps.py) ---

STEPS_MODULE = "tests.trainer.distribute_steps"


def _env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """{"one" | "two": {variant: arrays}}: 1 process (batch 2B) and 2 workers (B each)."""
    root = tmp_path_factory.mktemp("distribute")
    (root / "one").mkdir()
    (root / "two").mkdir()
    subprocess.run([sys.executable, "-m", STEPS_MODULE, str(root / "one")], env=_env(),
                   check=True, timeout=240, capture_output=True)
    distribute_run.run_workers([sys.executable, "-m", STEPS_MODULE, str(root / "two")], 2,
                               root / "logs", timeout=360, env=_env())
    return {run: {path.stem: dict(np.load(path)) for path in (root / run).glob("*.npz")}
            for run in ("one", "two")}


def _weights(result: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [result[key] for key in sorted(result) if key.startswith("w")]


@pytest.mark.slow(minutes=3)
@pytest.mark.parametrize("variant", ["fhn_adam", "hn_adam", "fhn_sgd", "hn_sgd", "fhn_exact",
                                     "fhn_bank"])
def test_two_workers_train_as_one_process_with_the_global_batch(runs, variant):
    one, two = runs["one"][variant], runs["two"][variant]
    assert len(one["losses"]) == 10
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    for expected, actual in zip(_weights(one), _weights(two), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-4)
    moved = max(np.abs(w).max() for w in _weights(one))
    assert moved > 0


@pytest.mark.slow(minutes=3)
def test_negatives_of_the_local_batch_only_do_not_train_as_one_process(runs):
    one, local = runs["one"]["fhn_adam"], runs["two"]["fhn_adam_local"]
    assert np.max(np.abs(local["losses"] - one["losses"]) / one["losses"]) > 1e-2


@pytest.mark.slow(minutes=3)
@pytest.mark.parametrize("variant", ["fhn_exact", "fhn_bank"])
def test_global_mining_of_two_workers_finds_the_negatives_of_one_process(runs, variant):
    one, two = runs["one"][variant], runs["two"][variant]
    assert one["neg_image"].shape == (16,)
    np.testing.assert_array_equal(two["neg_image"], one["neg_image"])
    np.testing.assert_array_equal(two["neg_caption"], one["neg_caption"])
    # varied rows: an all-zero bank, say, would tie every query at the lowest row
    assert len(set(one["neg_image"])) > 4 and len(set(one["neg_caption"])) > 4


@pytest.mark.slow(minutes=3)
def test_two_stream_workers_train_as_one_process_with_the_global_batch(runs):
    one, two = runs["one"]["fhn_stream"], runs["two"]["fhn_stream"]
    assert len(one["losses"]) == 10
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    for expected, actual in zip(_weights(one), _weights(two), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-4)


@pytest.mark.slow(minutes=3)
def test_stream_workers_comparing_pairs_by_batch_row_do_not_train_as_one_process(runs):
    one, by_row = runs["one"]["fhn_stream"], runs["two"]["fhn_stream_by_row"]
    np.testing.assert_allclose(runs["one"]["fhn_stream_by_row"]["losses"], one["losses"],
                               rtol=1e-6)  # one process: its rows are the global batch's
    assert np.max(np.abs(by_row["losses"] - one["losses"]) / one["losses"]) > 1e-2


@pytest.mark.slow(minutes=1)
def test_workers_that_disagree_on_the_configuration_fail(tmp_path):
    script = ("import json, os\n"
              "from trainer.train import distribute\n"
              "from trainer.config import TrainerConfig\n"
              "index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
              "config = TrainerConfig(seed=index)\n"
              "distribute.check_same_config(distribute.strategy_for(config), config)\n")
    with pytest.raises(RuntimeError, match="workers disagree on the trainer configuration"):
        distribute_run.run_workers([sys.executable, "-c", script], 2, tmp_path, timeout=120,
                                   env=_env())


def test_run_fn_reads_only_its_own_settings_of_a_vertex_trainers_custom_config():
    from trainer import task

    custom = {"loss": "hn", "epochs": 4, "ai_platform_training_args": {"project": "p"},
              "ai_platform_enable_vertex": True, "ai_platform_vertex_region": "europe-west4"}
    assert task.trainer_settings(custom) == {"loss": "hn", "epochs": 4}
    assert TrainerConfig.from_dict(task.trainer_settings(custom)).epochs == 4
    assert task.trainer_settings(None) == {}
