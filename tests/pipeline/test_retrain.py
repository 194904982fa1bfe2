import os
import subprocess
import sys
import time

from pipeline import config as config_lib
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
