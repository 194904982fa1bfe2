"""What ``run`` and ``retrain`` check before anything runs: their folders, the search model's
folder in the serving dir, and (``retrain``) that the data has spans."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

from pipeline import config as config_lib
from pipeline import preflight
from pipeline import run as run_lib
from serving import layout

# Run in a fresh interpreter: the exit code, and whether TFX / TensorFlow got imported.
_CLI = ("import sys; from pipeline import cli; rc = cli.main(sys.argv[1:]); "
        "print(rc, 'tfx' in sys.modules, 'tensorflow' in sys.modules)")


def _cli(*argv: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", _CLI, *argv], capture_output=True, text=True,
                         timeout=180)
    return out, time.monotonic() - started


def _assert_refused_fast(out: subprocess.CompletedProcess, seconds: float, *words: str) -> str:
    """The run exited with code 2, one stderr line holding ``words``, without TFX or TF."""
    assert out.stdout.strip().splitlines()[-1:] == ["2 False False"], out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert seconds < 10.0, f"the refusal took {seconds:.1f}s"
    return lines[0]


@pytest.mark.parametrize("command", ["run", "retrain"])
def test_a_pipeline_root_that_is_a_regular_file_is_one_line_exit_2(tmp_path, command):
    root = tmp_path / "root"
    root.write_text("not a folder")
    data = tmp_path / "data"
    (data / "span-1").mkdir(parents=True)
    out, seconds = _cli(command, "--data", str(data), "--pipeline-root", str(root),
                        "--serving-dir", str(tmp_path / "serving"))
    line = _assert_refused_fast(out, seconds, f"{root}: pipeline_root: ", "regular file")
    assert "Traceback" not in line
    assert not (tmp_path / "serving").exists()


def test_a_pipeline_root_under_a_regular_file_or_proc_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    for root in (tmp_path / "file" / "root", pathlib.Path("/proc/xmodal-root")):
        out, seconds = _cli("run", "--data", str(tmp_path), "--pipeline-root", str(root),
                            "--serving-dir", str(tmp_path / "serving"))
        _assert_refused_fast(out, seconds, f"{root}: pipeline_root: ")
        assert not root.exists()


def test_a_serving_dir_that_is_a_regular_file_is_refused_before_anything_runs(tmp_path):
    serving = tmp_path / "serving"
    serving.write_text("")
    root = tmp_path / "root"
    out, seconds = _cli("run", "--data", str(tmp_path), "--pipeline-root", str(root),
                        "--serving-dir", str(serving))
    _assert_refused_fast(out, seconds, f"{serving}: serving_dir: ", "regular file")
    assert not root.exists()  # no lock, no log: nothing ran


def test_folders_that_do_not_exist_yet_are_not_created_by_the_check(tmp_path):
    config = config_lib.PipelineConfig(pipeline_root=str(tmp_path / "a" / "root"),
                                       serving_dir=str(tmp_path / "b" / "serving"))
    preflight.check_run(config)
    assert sorted(os.listdir(tmp_path)) == []
    remote = config_lib.PipelineConfig(pipeline_root="gs://bucket/root",
                                       serving_dir="gs://bucket/serving")
    preflight.check_run(remote)


def test_a_read_only_folder_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    config = config_lib.PipelineConfig(pipeline_root=str(locked / "root"))
    with pytest.raises(config_lib.ConfigError, match="pipeline_root: cannot write in"):
        preflight.check_run(config)


def _version(base: pathlib.Path, version: int, search_model: bool) -> None:
    folder = base / str(version)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")
    if search_model:
        (folder / layout.INDEX_SUBDIR).mkdir(parents=True)


def test_a_search_model_folder_holding_another_model_is_refused(tmp_path):
    serving = tmp_path / "serving"
    search = serving / ("xmodal" + layout.SEARCH_MODEL_SUFFIX)
    config = config_lib.PipelineConfig(pipeline_root=str(tmp_path / "root"),
                                       serving_dir=str(serving), model_name="xmodal")
    _version(search, 1, search_model=True)
    preflight.check_run(config)  # xmodal's own search model: fine
    _version(search, 2, search_model=False)
    with pytest.raises(config_lib.ConfigError,
                       match=rf"{serving}: model_name: {search}/2 is not a search model "
                             rf"\(no {layout.INDEX_SUBDIR}\)"):
        preflight.check_run(config)
    out, seconds = _cli("run", "--data", str(tmp_path), "--pipeline-root", str(tmp_path / "root"),
                        "--serving-dir", str(serving), "--model-name", "xmodal")
    _assert_refused_fast(out, seconds, "xmodal_search/2 is not a search model")


def test_retrain_refuses_data_without_spans_and_trains_nothing(tmp_path, monkeypatch):
    def trained(*args, **kwargs):
        raise AssertionError("retrain trained on data without span-<N>/ folders")

    monkeypatch.setattr(run_lib, "_run_locked", trained)
    (tmp_path / "data").mkdir()
    config = config_lib.PipelineConfig(pipeline_root=str(tmp_path / "root"),
                                       data_dir=str(tmp_path / "data"))
    with pytest.raises(ValueError, match=rf"retrain: {tmp_path / 'data'} has no span-<N>/ "
                                         r"folders.*with `run`"):
        run_lib.retrain(config)


def test_retrain_without_spans_is_one_error_line_on_the_command_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    out, _ = _cli("retrain", "--data", str(data), "--pipeline-root", str(tmp_path / "root"),
                  "--serving-dir", str(tmp_path / "serving"))
    assert out.stdout.strip().splitlines()[-1] == "1 False False", out.stdout + out.stderr
    assert "processing span None" not in out.stdout
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: ValueError: retrain: {data} has no span-<N>/ folders"), line
