import os
import re
import subprocess
import sys
import time

import pytest

from pipeline import config as config_lib
from pipeline import mlmd_summary
from pipeline import run as run_lib


def test_newest_span_reads_span_folders(tmp_path):
    assert run_lib.newest_span(str(tmp_path)) is None
    for name in ("span-1", "span-10", "span-2", "spanx", "other"):
        (tmp_path / name).mkdir()
    assert run_lib.newest_span(str(tmp_path)) == 10


def test_the_pipeline_lock_refuses_a_second_run_or_retrain(tmp_path):
    config = config_lib.PipelineConfig(pipeline_root=str(tmp_path), data_dir=str(tmp_path))
    lock_path = os.path.join(tmp_path, run_lib.LOCK_NAME)
    with run_lib.exclusive_lock(lock_path) as acquired:
        assert acquired
        with run_lib.exclusive_lock(lock_path) as second:
            assert not second
        assert run_lib.retrain(config) == 75
        assert run_lib.run(config) == 75
    with run_lib.exclusive_lock(lock_path) as again:
        assert again


# Run in a fresh interpreter: reports the exit code and whether TFX / TensorFlow got imported.
_RETRAIN = (
    "import sys; from pipeline import cli; rc = cli.main(sys.argv[1:]); "
    "print(rc, 'tfx' in sys.modules, 'tensorflow' in sys.modules)"
)


def test_retrain_takes_its_lock_before_the_heavy_imports(tmp_path):
    root, data = tmp_path / "root", tmp_path / "drops"
    (data / "span-1").mkdir(parents=True)
    root.mkdir()
    argv = [sys.executable, "-c", _RETRAIN, "retrain", "--data", str(data),
            "--pipeline-root", str(root)]
    with run_lib.exclusive_lock(str(root / run_lib.LOCK_NAME)) as acquired:
        assert acquired
        started = time.monotonic()
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - started
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "75 False False", out.stdout + out.stderr
    assert "another retrain holds the lock" in lines[0]
    assert seconds < 10.0, f"the lock refusal took {seconds:.1f}s"


def test_processed_spans_is_empty_without_metadata(tmp_path):
    config = config_lib.PipelineConfig(pipeline_root=str(tmp_path))
    assert run_lib.processed_spans(config) == set()


@pytest.mark.e2e
@pytest.mark.slow(minutes=9)
def test_retrain_after_a_default_run_warm_starts_from_its_pushed_minilm_model(flickr8k_dir,
                                                                               tmp_path, capsys):
    """The default trainer (fine-tuned MiniLM), one epoch on 300-image spans."""
    from benchmarks.slices import write_flickr_slice
    from serving.client import EmbeddingClient, LocalBackend

    data = tmp_path / "drops"
    write_flickr_slice(flickr8k_dir, data / "span-1", n_train=200, n_eval=100)
    config = config_lib.from_dict({
        "data_dir": str(data), "pipeline_root": str(tmp_path / "root"),
        "serving_dir": str(tmp_path / "serving"), "trainer": {"epochs": 1},
        "eval": {"rsum_lower_bound": 60.0, "rsum_change_threshold": -5.0}})
    assert run_lib.run(config) == 0
    first = _last_run(config)
    assert re.search(r"^host: .*MiniLM", capsys.readouterr().out, re.MULTILINE)
    assert _pushed(first)
    (version,) = os.listdir(tmp_path / "serving" / config.model_name)
    client = EmbeddingClient(LocalBackend(str(tmp_path / "serving" / config.model_name / version)))
    assert client.embed_text(["A dog runs on the beach.", "two children"]).shape == (2, 1024)

    write_flickr_slice(flickr8k_dir, data / "span-2", n_train=200, n_eval=100, offset=200)
    log = tmp_path / "retrain.log"
    assert run_lib.retrain(config, log_path=str(log)) == 0
    second = _last_run(config)
    (base,) = second["Trainer"].inputs["base_model"]
    (first_model,) = first["Trainer"].outputs["model"]
    assert base.uri == first_model.uri
    # The Trainer's own lines reach the run's output; the TFX log file keeps absl's logger only.
    assert f"warm-started the towers from {first_model.uri}" in capsys.readouterr().out
    versions = os.listdir(tmp_path / "serving" / config.model_name)
    assert _pushed(second) == _blessed(second)
    assert len(versions) == (2 if _blessed(second) else 1)


def _last_run(config: config_lib.PipelineConfig) -> dict[str, mlmd_summary.NodeRun]:
    store = mlmd_summary.open_store(config.metadata_db)
    runs = mlmd_summary.pipeline_runs(store, config.pipeline_name)
    return mlmd_summary.run_nodes(store, runs[-1])


def _blessed(nodes: dict[str, mlmd_summary.NodeRun]) -> bool:
    return mlmd_summary.custom_property(nodes["Evaluator"].outputs["blessing"][0], "blessed") == 1


def _pushed(nodes: dict[str, mlmd_summary.NodeRun]) -> bool:
    artifact = next(iter(nodes["Pusher"].outputs.values()))[0]
    return mlmd_summary.custom_property(artifact, "pushed") == 1
