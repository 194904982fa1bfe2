"""End-to-end ``python -m pipeline run`` wall time on Flickr8k, per component.

Runs the real CLI in a child process on a fresh pipeline root (nothing cached), with the
pipeline's defaults, and prints the host's matmul rate and load, the wall time of the whole run,
the child's peak resident memory, each component's wall time as the run's own summary reports it
(from ML Metadata), and the run's lines on the Trainer's setting (host probe), its epochs (step
time, eval rsum), the Evaluator's rsum and the blessing and push.
``--quick`` runs a 300-image slice of Flickr8k for 1 epoch instead (a smoke run, ~2 min).
``--set KEY=VALUE ...`` hands configuration overrides to the run (``python -m pipeline run
--set``), so other models than the default are timed the same way, e.g.
``--set trainer.text_tower=mean`` or ``--set trainer.minilm_trainable_layers=0``.

``python -m benchmarks.bench_pipeline [--quick] [--data DIR] [--keep DIR] [--set KEY=VALUE ...]``
"""

from __future__ import annotations

import argparse
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import time

from benchmarks import harness, machine
from benchmarks.slices import write_flickr_slice

# "  Trainer                    ran      130.5s" in the run summary (pipeline/summary.py).
COMPONENT_LINE = re.compile(r"^  (\w+)\s+([A-Za-z]+)\s+(?:([\d.]+)s|-)\s*$")
# The run's own lines worth keeping: the Trainer's host setting and matmul rates, its epochs
# (step time and eval), the text-tower fallback, the eval rsum and the blessing / push.
RESULT_LINE = re.compile(
    r"^(blessing:|pushed:|push:|  rsum |host: |  float32 |epoch \d+ |text tower: )")


def component_seconds(output: str) -> dict[str, float | None]:
    """Component -> wall seconds (None when it did not run) from the run summary's lines."""
    rows = {}
    for line in output.splitlines():
        match = COMPONENT_LINE.match(line)
        if match:
            rows[match.group(1)] = float(match.group(3)) if match.group(3) else None
    return rows


def labelled(line: str) -> str:
    """A run's result line as ``label: value``, the form ``make bench`` records as a table row.

    The Trainer's setting and probe lines and the Evaluator's rsum row get labels of their own;
    the others (epochs, blessing, push) already have one.
    """
    text = line.strip()
    if line.startswith("host: "):
        return "Trainer setting: " + line.removeprefix("host: ")
    if text.startswith("float32 "):
        return "Trainer probe: " + text
    if text.startswith("rsum "):
        return "Evaluator rsum: " + text.split()[1]
    return line


def pipeline_command(data: pathlib.Path, work: pathlib.Path, extra: list[str],
                     overrides: list[str]) -> list[str]:
    """The ``python -m pipeline run`` command line on a pipeline root under ``work``."""
    command = [sys.executable, "-m", "pipeline", "run", "--data", str(data),
               "--pipeline-root", str(work / "root"), "--serving-dir", str(work / "serving"),
               *extra]
    return command + (["--set", *overrides] if overrides else [])


def run_pipeline(data: pathlib.Path, work: pathlib.Path, extra: list[str],
                 overrides: list[str] = ()) -> dict:
    """Runs ``python -m pipeline run`` once; returns its wall time, output and peak RSS."""
    command = pipeline_command(data, work, extra, list(overrides))
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "peak_gib": peak_kib / 2**20, "output": done.stdout}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300-image slice, 1 epoch")
    parser.add_argument("--data", help="Flickr8k folder (default ../shared/data/flickr8k)")
    parser.add_argument("--keep", help="write the pipeline root and serving dir here (kept)")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="configuration overrides for the run, e.g. trainer.text_tower=mean")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    data = harness.flickr8k_dir(args.data)
    host = machine.describe()  # before the run: the matmul probe would compete with it
    with tempfile.TemporaryDirectory() as scratch:
        work = pathlib.Path(args.keep or scratch)
        extra: list[str] = []
        if args.quick:
            data = write_flickr_slice(data, work / "slice", n_train=250, n_eval=50)
            extra = ["--epochs", "1"]
        result = run_pipeline(data, work, extra, args.set)
    components = component_seconds(result["output"])
    settings = " ".join(args.set) or "defaults"
    print(f"== summary: bench_pipeline (python -m pipeline run, {settings}, fresh root) ==")
    print(f"host: {host['cpu']}, {host['cores']} cores, float32 4096² matmul "
          f"{host['matmul_gflops']} GFLOP/s (wall, median), load {host['load']} before the run")
    print(f"{harness.machine_line()} after the run")
    print(f"data: {'300-image slice, 1 epoch' if args.quick else data}")
    print(f"wall: {result['seconds']:.0f} s, peak RSS {result['peak_gib']:.2f} GiB")
    for name, seconds in components.items():
        print(f"{name}: {'not run' if seconds is None else f'{seconds:.1f} s'}")
    for line in result["output"].splitlines():
        if RESULT_LINE.match(line):
            print(labelled(line))
    return {**result, "components": components, "host": host}


if __name__ == "__main__":
    main()
