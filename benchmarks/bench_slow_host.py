"""The default pipeline run on an emulated slow host: its wall time against the 25-minute budget.

Some development hosts multiply float32 matrices at about 44 GFLOP/s (AVX2 only, 2 cores) where
others reach 300-430 (AVX-512/AMX). The default run trains the model it is configured with on
every host (the fine-tuned MiniLM tower); this times that run where matmuls are slow, against
the 25-minute budget. To time it on a fast host, this runs ``benchmarks.bench_pipeline`` in a
child whose oneDNN is capped at an older instruction set (``ONEDNN_MAX_CPU_ISA``: TensorFlow's
CPU matmuls, Eigen's contraction kernel included, run through oneDNN) and whose CPU affinity is
cut to ``--cores`` cores. With ``SSE41`` the 4096² matmul runs at about 75 GFLOP/s on 2 cores and
38 on 1 (the default: below the 44 of the slow host, and harsher than it for the Beam components
too). Both the child's own probe and the Trainer's (``trainer.train.host_speed``, reported, never
acted on) measure the capped rate; the summary repeats the child's and adds the budget. Under the
cap ``trainer.precision=auto`` is float32 whatever the CPU flags say (``trainer.model.precision``),
as on a slow host without native bfloat16. Any
``--set`` of ``python -m pipeline run`` is passed on, e.g. ``--set
trainer.minilm_trainable_layers=0`` times the frozen encoder, the faster option for slow hosts.

``--quick`` times ``bench_pipeline --quick`` (a 300-image slice, 1 epoch) instead: a smoke run.

``python -m benchmarks.bench_slow_host [--quick] [--isa SSE41] [--cores 1] [--keep DIR]
[--data DIR] [--set KEY=VALUE ...]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from benchmarks.results_page import SUMMARY_MARK

BUDGET_S = 25 * 60
ISAS = ("SSE41", "AVX", "AVX2")
WALL_LINE = re.compile(r"^wall: (\d+) s")


def child_environment(environ: dict[str, str], isa: str) -> dict[str, str]:
    """``environ`` with oneDNN capped at ``isa`` (one of ``ISAS``)."""
    if isa not in ISAS:
        raise ValueError(f"--isa {isa!r}: expected one of {', '.join(ISAS)}")
    return {**environ, "ONEDNN_MAX_CPU_ISA": isa}


def child_cores(available: set[int], cores: int) -> set[int]:
    """The first ``cores`` of the ``available`` CPUs.

    Raises:
        ValueError: fewer than ``cores`` CPUs are available, or ``cores`` < 1.

    """
    if not 1 <= cores <= len(available):
        raise ValueError(f"--cores {cores}: this process may use {len(available)} CPU(s)")
    return set(sorted(available)[:cores])


def summary(child_output: str, isa: str, cores: int,
            overrides: list[str] | None = None) -> list[str]:
    """The child's summary block relabelled as this benchmark's, with the budget line added.

    ``overrides`` (the run's ``--set`` items) are named in the title; none: the default run.

    Raises:
        ValueError: the child printed no summary or no wall time.

    """
    lines = child_output.splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(SUMMARY_MARK)]
    walls = [int(m.group(1)) for m in map(WALL_LINE.match, lines) if m]
    if not marks or not walls:
        raise ValueError("bench_pipeline printed no summary with a wall time:\n"
                         + "\n".join(lines[-20:]))
    wall = walls[-1]
    verdict = "within" if wall <= BUDGET_S else "OVER"
    run = f"--set {' '.join(overrides)}" if overrides else "default run"
    title = f"bench_slow_host ({run}, oneDNN capped at {isa}, {cores} core(s))"
    return [f"{SUMMARY_MARK}: {title} ==",
            f"emulation: ONEDNN_MAX_CPU_ISA={isa}, CPU affinity {cores} core(s)",
            f"budget: {wall} s of {BUDGET_S} s, {verdict} the budget",
            *lines[marks[-1] + 1:]]


def child_command(args: argparse.Namespace) -> list[str]:
    """The ``bench_pipeline`` command of the child: this benchmark's options passed on."""
    command = [sys.executable, "-m", "benchmarks.bench_pipeline", *(["--quick"] * args.quick)]
    command += [f"--{name}={value}" for name in ("keep", "data")
                if (value := getattr(args, name))]
    return command + (["--set", *args.set] if args.set else [])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of this benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bench_pipeline --quick")
    parser.add_argument("--isa", default="SSE41", help=f"oneDNN ISA cap, one of {ISAS}")
    parser.add_argument("--cores", type=int, default=1, help="CPUs the run may use")
    parser.add_argument("--keep", help="keep the pipeline root and serving dir here")
    parser.add_argument("--data", help="Flickr8k folder (default ../shared/data/flickr8k)")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="configuration overrides of the run (default: none, the default "
                             "model as configured)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    env = child_environment(dict(os.environ), args.isa)
    cpus = child_cores(os.sched_getaffinity(0), args.cores)
    command = child_command(args)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode} after "
                           f"{time.perf_counter() - start:.0f} s:\n{done.stderr[-3000:]}")
    lines = summary(done.stdout, args.isa, args.cores, args.set)
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
