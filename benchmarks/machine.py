"""The machine a benchmark run measured on: CPU model, cores, float32 matmul rate, load.

``python -m benchmarks.machine`` prints it as one JSON object; ``benchmarks.run_all`` runs it in
its own process (TensorFlow stays out of the runner) and records it with every figure, because
on a shared host the same code's timings move with the host's matmul rate.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform


def cpu_model(cpuinfo: pathlib.Path = pathlib.Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from ``cpuinfo`` (Linux), else what ``platform`` reports."""
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def peak_rss_kib(pid: int) -> int:
    """A live process's peak resident set since its ``exec`` (``VmHWM``), KiB; 0 once it is gone.

    Not ``wait4``'s ``ru_maxrss``: Linux carries it across fork + exec, so a child would report
    the forking process's peak whenever that is higher. A zombie has no ``VmHWM`` line.
    """
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    kib = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(kib[0]) if kib else 0


def matmul_gflops(repeats: int = 5) -> float:
    """Median GFLOP/s of a plain float32 4096² ``tf.matmul`` (``harness.matmul_step``)."""
    import tensorflow as tf

    from benchmarks import harness

    step, flops = harness.matmul_step(tf.float32)
    return flops / harness.median_seconds(step, repeats) / 1e9


def describe() -> dict:
    """``{"cpu", "cores", "matmul_gflops", "load"}`` of this machine, measured now.

    ``cores`` are those this process may run on (its CPU affinity), which the matmul rate and
    the benchmark's figures were measured with, not all the machine has.
    """
    return {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
            "matmul_gflops": round(matmul_gflops(), 1), "load": round(os.getloadavg()[0], 2)}


if __name__ == "__main__":
    print(json.dumps(describe()))
