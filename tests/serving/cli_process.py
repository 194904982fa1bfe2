"""``python -m pipeline search`` run as a child process, with its exit status, output, peak memory.

The child is watched while it runs: it is killed, and the test fails, as soon as its resident
memory passes ``memory_cap`` or it runs past ``timeout_s``, so a runaway read cannot take the host's
memory. Its peak resident memory is the kernel's high-water mark of the child's own image
(``VmHWM``, read at every look): ``os.wait4``'s ``ru_maxrss`` would count the resident memory of
the test process that forked it, which the child held until its ``exec``.
"""

import dataclasses
import os
import pathlib
import subprocess
import sys
import time

import psutil
import pytest

from benchmarks import machine

REPO = pathlib.Path(__file__).resolve().parents[2]
GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Finished:
    """A finished child: exit status, output, peak resident memory (bytes) and wall seconds."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss: int
    seconds: float


def _watch(proc: subprocess.Popen, timeout_s: float, memory_cap: int) -> tuple[int, int, float]:
    """Waits for ``proc``: (exit status, peak RSS in bytes, seconds); kills it past a limit."""
    watched, start, peak = psutil.Process(proc.pid), time.monotonic(), 0
    while True:
        peak = max(peak, machine.peak_rss_kib(proc.pid) * 1024)
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        seconds = time.monotonic() - start
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
            return proc.returncode, peak, seconds
        try:
            rss = watched.memory_info().rss
        except psutil.NoSuchProcess:  # exited (a zombie) between the two looks
            rss = 0
        if rss > memory_cap or seconds > timeout_s:
            proc.kill()
            proc.wait()
            pytest.fail(f"{proc.args} killed after {seconds:.1f} s at {rss / GIB:.2f} GiB "
                        f"resident (limits: {timeout_s} s, {memory_cap / GIB:.2f} GiB)")
        time.sleep(0.02)


def run_search(args: list[str], tmp_path: pathlib.Path, timeout_s: float = 120,
               memory_cap: int = GIB) -> Finished:
    """Runs ``python -m pipeline search ARGS`` from the repository, its temp folder ``tmp_path``.

    ``search`` writes its log into the temp folder (``pipeline.console.search_log_path``), so the
    log of this run is under ``tmp_path``.
    """
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TMPDIR": str(tmp_path)}
    env.pop("PYTHONWARNINGS", None)  # a user's shell: the libraries' warnings are not muted

    out_path, err_path = tmp_path / "search.stdout", tmp_path / "search.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "search", *args], cwd=REPO,
                                env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        returncode, peak, seconds = _watch(proc, timeout_s, memory_cap)
    return Finished(returncode, out_path.read_text(errors="replace"),
                    err_path.read_text(errors="replace"), peak, seconds)
