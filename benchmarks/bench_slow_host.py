"""The default pipeline run on an emulated slow host, and the frozen-encoder option beside it.

Some development hosts multiply float32 matrices at about 44 GFLOP/s (AVX2 only, 2 cores) where
others reach 300-430 (AVX-512/AMX). The default run trains the model it is configured with on
every host (the fine-tuned MiniLM tower); this times that run where matmuls are slow, against
the 25-minute budget, and beside it the option documented for slow hosts,
``--set trainer.minilm_trainable_layers=0`` (the frozen MiniLM encoder: one encoder pass over the
captions, then only pooling and projection are trained). To time them on a fast host, each runs
``benchmarks.bench_pipeline`` in a child whose oneDNN is capped at an older instruction set
(``ONEDNN_MAX_CPU_ISA``: TensorFlow's CPU matmuls, Eigen's contraction kernel included, run
through oneDNN) and whose CPU affinity is cut to ``--cores`` cores. With ``SSE41`` the 4096²
matmul runs at about 75 GFLOP/s on 2 cores and 38 on 1 (the default: below the 44 of the slow
host, and harsher than it for the Beam components too). Where the host has a set of cores for
each run, the runs go side by side on separate cores (sharing caches and memory bandwidth, as a
second job on the slow host would); otherwise one after the other. Both each child's own probe
and the Trainer's (``trainer.train.host_speed``, reported, never acted on) measure the capped
rate; the summary repeats each child's figures under its run's label and adds the budget. Under
the cap ``trainer.precision=auto`` is float32 whatever the CPU flags say
(``trainer.model.precision``), as on a slow host without native bfloat16.

``--set`` times one run with those overrides of ``python -m pipeline run`` instead of the two.
``--quick`` times ``bench_pipeline --quick`` (a 300-image slice, 1 epoch): a smoke run.

``python -m benchmarks.bench_slow_host [--quick] [--isa SSE41] [--cores 1] [--keep DIR]
[--data DIR] [--set KEY=VALUE ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from typing import IO

from benchmarks.results_page import SUMMARY_MARK

BUDGET_S = 25 * 60
ISAS = ("SSE41", "AVX", "AVX2")
WALL_LINE = re.compile(r"^wall: (\d+) s")
# The default model, and the faster option that docs/minilm.md offers slow hosts.
RUNS = ((), ("trainer.minilm_trainable_layers=0",))


def child_environment(environ: dict[str, str], isa: str) -> dict[str, str]:
    """``environ`` with oneDNN capped at ``isa`` (one of ``ISAS``)."""
    if isa not in ISAS:
        raise ValueError(f"--isa {isa!r}: expected one of {', '.join(ISAS)}")
    return {**environ, "ONEDNN_MAX_CPU_ISA": isa}


def child_cores(available: set[int], cores: int, runs: int = 1) -> list[set[int]]:
    """The CPUs of each of ``runs`` children: disjoint sets of ``cores`` where the host has them.

    Returns ``runs`` sets; they are all the same first ``cores`` CPUs (the runs then go one after
    the other) when ``available`` holds fewer than ``cores * runs``.

    Raises:
        ValueError: fewer than ``cores`` CPUs are available, or ``cores`` < 1.

    """
    if not 1 <= cores <= len(available):
        raise ValueError(f"--cores {cores}: this process may use {len(available)} CPU(s)")
    ordered = sorted(available)
    if cores * runs > len(ordered):
        return [set(ordered[:cores])] * runs
    return [set(ordered[i * cores:(i + 1) * cores]) for i in range(runs)]


def run_label(overrides: tuple[str, ...] | list[str]) -> str:
    """How a run's rows are labelled: ``default`` or its ``--set`` items."""
    return " ".join(overrides) if overrides else "default"


def run_summary(child_output: str, overrides: tuple[str, ...] | list[str]) -> list[str]:
    """One child's summary lines, each labelled with its run, and the budget line first.

    Raises:
        ValueError: the child printed no summary or no wall time.

    """
    lines = child_output.splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(SUMMARY_MARK)]
    walls = [int(m.group(1)) for m in map(WALL_LINE.match, lines) if m]
    if not marks or not walls:
        raise ValueError(f"bench_pipeline ({run_label(overrides)}) printed no summary with a "
                         "wall time:\n" + "\n".join(lines[-20:]))
    verdict = "within" if walls[-1] <= BUDGET_S else "OVER"
    label = f"[{run_label(overrides)}]"
    return [f"{label} budget: {walls[-1]} s of {BUDGET_S} s, {verdict} the budget",
            *(f"{label} {line}" for line in lines[marks[-1] + 1:] if line.strip())]


def summary(outputs: list[str], runs: list[tuple[str, ...]], isa: str, cores: int,
            side_by_side: bool) -> list[str]:
    """The summary block of the benchmark: the emulation, then each run's labelled figures."""
    how = "side by side on separate cores" if side_by_side else "one after the other"
    title = (f"bench_slow_host ({', '.join(map(run_label, runs))}; oneDNN capped at {isa}, "
             f"{cores} core(s) per run)")
    lines = [f"{SUMMARY_MARK}: {title} ==",
             f"emulation: ONEDNN_MAX_CPU_ISA={isa}, CPU affinity {cores} core(s) per run, "
             f"{len(runs)} run(s) {how}"]
    for output, overrides in zip(outputs, runs, strict=True):
        lines += run_summary(output, overrides)
    return lines


def child_command(args: argparse.Namespace, overrides: tuple[str, ...],
                  keep: pathlib.Path | None = None) -> list[str]:
    """The ``bench_pipeline`` command of one child: this benchmark's options passed on."""
    command = [sys.executable, "-m", "benchmarks.bench_pipeline", *(["--quick"] * args.quick)]
    command += [f"--keep={keep}"] * (keep is not None)
    command += [f"--data={args.data}"] * bool(args.data)
    return command + (["--set", *overrides] if overrides else [])


def disjoint(cpu_sets: list[set[int]]) -> bool:
    """Whether no two CPU sets share a CPU, so that their children may run at once."""
    return sum(map(len, cpu_sets)) == len(set().union(*cpu_sets))


def run_children(commands: list[list[str]], env: dict[str, str],
                 cpu_sets: list[set[int]]) -> list[str]:
    """Runs the commands (at once when their CPU sets are disjoint) and returns their stdout.

    Output goes to files, not pipes: a child blocked on a full pipe while another is awaited
    would stall the run.

    Raises:
        RuntimeError: a child exited with an error (its stderr's tail is shown).

    """
    start, outputs, pending = time.perf_counter(), [], []
    at_once = disjoint(cpu_sets)
    with contextlib.ExitStack() as stack:
        for command, cpus in zip(commands, cpu_sets, strict=True):
            out, err = (stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(2))
            process = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True,
                                       preexec_fn=lambda cpus=cpus: os.sched_setaffinity(0, cpus))
            pending.append((command, process, out, err))
            if not at_once:
                outputs.append(_finish(*pending.pop(), start))
        return outputs + [_finish(*child, start) for child in pending]


def _finish(command: list[str], process: subprocess.Popen, out: IO[str], err: IO[str],
            start: float) -> str:
    process.wait()
    out.seek(0)
    err.seek(0)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode} after "
                           f"{time.perf_counter() - start:.0f} s:\n{err.read()[-3000:]}")
    return out.read()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of this benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bench_pipeline --quick")
    parser.add_argument("--isa", default="SSE41", help=f"oneDNN ISA cap, one of {ISAS}")
    parser.add_argument("--cores", type=int, default=1, help="CPUs each run may use")
    parser.add_argument("--keep", type=pathlib.Path,
                        help="keep each run's pipeline root and serving dir under DIR/<run>")
    parser.add_argument("--data", help="Flickr8k folder (default ../shared/data/flickr8k)")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="time one run with these configuration overrides (default: the "
                             "default model and trainer.minilm_trainable_layers=0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    runs = [tuple(args.set)] if args.set else list(RUNS)
    env = child_environment(dict(os.environ), args.isa)
    cpu_sets = child_cores(os.sched_getaffinity(0), args.cores, len(runs))
    commands = [child_command(args, overrides, args.keep and args.keep / f"run{i}")
                for i, overrides in enumerate(runs)]
    outputs = run_children(commands, env, cpu_sets)
    side_by_side = len(runs) > 1 and disjoint(cpu_sets)
    lines = summary(outputs, runs, args.isa, args.cores, side_by_side)
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
