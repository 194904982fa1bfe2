"""What ``python -m pipeline run`` prints: short on success, one line per error (slow)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from components.caption_example_gen.synthetic import write_synthetic_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow(minutes=4)]  # one small pipeline run each

MAX_LINES = 60
BAD_LINE = "no tab here"
# Third-party lines that belong in the log, not on the terminal.
CHATTER = ("WARNING:", "Unable to register", "FutureWarning", "Traceback", "Instructions for")


def _run(tmp_path: pathlib.Path, data: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pipeline", "run", "--data", str(data),
            "--pipeline-root", str(tmp_path / "root"), "--serving-dir", str(tmp_path / "serving"),
            *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


def _log_file(tmp_path: pathlib.Path) -> str:
    (log,) = (tmp_path / "root" / "logs").glob("run-*.log")
    return log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture()
def bad_data(tmp_path) -> tuple[pathlib.Path, str]:
    """Synthetic data whose token file has a malformed line 8; returns it and 'file:line'."""
    data = tmp_path / "bad"
    write_synthetic_dataset(str(data))
    tokens = data / "synthetic.token.txt"
    lines = tokens.read_text(encoding="utf-8").splitlines()
    lines[7] = BAD_LINE
    tokens.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data, f"{tokens}:8"


def test_a_normal_run_prints_progress_and_summary_only(tmp_path, shipped_image_backbone):
    data = tmp_path / "data"
    write_synthetic_dataset(str(data))
    out = _run(tmp_path, data)
    terminal = (out.stdout + out.stderr).splitlines()
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(terminal) <= MAX_LINES, "\n".join(terminal)
    assert not [line for line in terminal if line.startswith(CHATTER)], "\n".join(terminal)
    assert "blessing: BLESSED" in out.stdout and "Trainer ..." in out.stdout
    assert "WARNING" in _log_file(tmp_path)  # the chatter went to the log it names


def test_a_bad_data_run_prints_the_error_once_and_fails(tmp_path, bad_data):
    data, location = bad_data
    out = _run(tmp_path, data)
    terminal = out.stdout + out.stderr
    assert out.returncode != 0
    assert terminal.count(location) == 1, terminal
    (error,) = [line for line in out.stderr.splitlines() if location in line]
    assert error.startswith(f"error: IngestError: {location}: malformed line '{BAD_LINE}'")
    assert "Traceback" not in terminal and len(terminal.splitlines()) <= 15, terminal
    assert "Traceback" in _log_file(tmp_path)


def test_verbose_shows_the_library_output_and_traceback(tmp_path, bad_data):
    data, location = bad_data
    out = _run(tmp_path, data, "--verbose")
    assert out.returncode != 0
    assert "Traceback" in out.stderr and location in out.stderr
    assert "ERROR:absl:" in out.stderr  # library logging stays on the terminal
