"""Runs every benchmark (``benchmarks/bench_*.py`` and ``report_*.py``) and prints a summary.

``python -m benchmarks.run_all [--quick] [--only NAME ...] [--skip NAME ...]`` is what
``make bench`` calls. Each module runs as ``python -m benchmarks.<name>`` in its own process (its
``main()``), so that its memory figures and TensorFlow state are its own and a crash or a
timeout stops only that module. Output is streamed with a ``[name]`` prefix; TensorFlow's C++
start-up log lines are hidden (and counted); the libraries' Python log records are shown but never
taken as figures. The summary lists each module's status and wall time
and its closing figures: the lines after its last ``== summary`` line, else its last lines.

A full run (not ``--quick``, whose figures are not reference figures, unless ``--results`` is
given) merges each successful module's closing figures, with the machine (``benchmarks.machine``),
the date and the commit, into ``docs/bench/results.json`` and re-renders ``docs/results.md`` from
it (``benchmarks.results_page``). The machine, date and commit are taken when the run starts. A
run of every module in which all finish is also recorded as the page's whole ``make bench``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

from benchmarks import results_page

BENCH_DIR = pathlib.Path(__file__).resolve().parent
PATTERNS = ("bench_*.py", "report_*.py")
TIMEOUT_S = 1800.0
# Modules that need longer: bench_slow_host runs the default pipeline on one emulated slow core.
LONG_TIMEOUT_S = {"bench_slow_host": 5400.0}
TAIL_LINES = 8
TF_LOG = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] |To enable the following "
                    r"instructions|WARNING: All log messages before absl)")
# Python logging records of the libraries (Beam's workers, TensorFlow's retracing warnings), in
# logging's default format: shown while the module runs, never taken as one of its figures.
LIBRARY_LOG = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:")
ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
       "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning"}


@dataclasses.dataclass
class Outcome:
    """One module's run: status (``ok``, ``failed (rc N)``, ``timeout``), seconds, output tail."""

    name: str
    status: str = "not run"
    seconds: float = 0.0
    hidden_lines: int = 0
    lines: list[str] = dataclasses.field(default_factory=list)

    def closing_figures(self) -> list[str]:
        """The lines after the last ``== summary`` line, else the last ``TAIL_LINES`` lines."""
        marks = [i for i, line in enumerate(self.lines) if line.startswith("== summary")]
        return self.lines[marks[-1]:] if marks else self.lines[-TAIL_LINES:]


def discover(only: list[str] | None, skip: list[str]) -> list[str]:
    """Module names of the benchmarks, sorted; ``only`` / ``skip`` filter by name.

    Raises:
        ValueError: a name in ``only`` or ``skip`` is not a benchmark module.

    """
    names = sorted({path.stem for pattern in PATTERNS for path in BENCH_DIR.glob(pattern)})
    unknown = sorted((set(only or []) | set(skip)) - set(names))
    if unknown:
        raise ValueError(f"unknown benchmark module(s) {unknown}; available: {names}")
    return [name for name in names if (not only or name in only) and name not in skip]


def module_timeout(name: str, timeout_s: float | None, quick: bool) -> float:
    """A module's time limit: ``timeout_s`` where given, else its default (240 s if ``quick``)."""
    if timeout_s:
        return timeout_s
    return 240.0 if quick else LONG_TIMEOUT_S.get(name, TIMEOUT_S)


def _pump(process: subprocess.Popen, outcome: Outcome, keep: collections.deque) -> None:
    for line in process.stdout:
        line = line.rstrip("\n")
        if TF_LOG.match(line):
            outcome.hidden_lines += 1
            continue
        if not LIBRARY_LOG.match(line):
            keep.append(line)
        print(f"[{outcome.name}] {line}", flush=True)


def run_module(name: str, quick: bool, timeout_s: float) -> Outcome:
    """Runs ``python -m benchmarks.<name> [--quick]``, streaming its output."""
    outcome, keep = Outcome(name), collections.deque(maxlen=200)
    command = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if quick else [])]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=BENCH_DIR.parent, env={**os.environ, **ENV},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    reader = threading.Thread(target=_pump, args=(process, outcome, keep), daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=timeout_s)
        outcome.status = "ok" if code == 0 else f"failed (rc {code})"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the module's own process group
        process.wait()
        outcome.status = f"timeout ({timeout_s:.0f} s)"
    reader.join()
    outcome.seconds = time.perf_counter() - start
    outcome.lines = list(keep)
    return outcome


def print_summary(outcomes: list[Outcome], total_s: float) -> None:
    """The combined summary: a status table, then each module's closing figures."""
    print(f"\n==== benchmark summary ({total_s / 60:.1f} min in all) ====")
    width = max(len(outcome.name) for outcome in outcomes)
    for outcome in outcomes:
        hidden = f", {outcome.hidden_lines} TF log lines hidden" if outcome.hidden_lines else ""
        print(f"{outcome.name:<{width}}  {outcome.status:<16} {outcome.seconds:7.1f} s{hidden}")
    for outcome in outcomes:
        print(f"\n--- {outcome.name} ({outcome.status}) ---")
        for line in outcome.closing_figures():
            print(line)


def measure_machine() -> dict:
    """``benchmarks.machine``'s description of this host, measured in its own process."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.machine"], cwd=BENCH_DIR.parent,
                          env={**os.environ, **ENV}, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def current_commit() -> str:
    """The short commit hash of the measured code, ``+changes`` when its files differ from it."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=BENCH_DIR.parent, capture_output=True,
                              text=True, check=False)

    commit = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    changed = git("status", "--porcelain", "--", ".", ":!docs").stdout.strip()
    return f"{commit}+changes" if changed else commit


@dataclasses.dataclass(frozen=True)
class Run:
    """What the figures of one ``run_all`` invocation share: host, date, commit, and scope.

    ``whole``: every benchmark module was run (no ``--only`` / ``--skip``), so that, if all
    finish, the run is recorded as the page's whole ``make bench``.
    """

    machine: dict
    date: str
    commit: str
    whole: bool

    @classmethod
    def starting_now(cls, machine: dict, whole: bool) -> Run:
        """The run that starts now, on the code checked out now."""
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        return cls(machine, date, current_commit(), whole)


def record_results(outcomes: list[Outcome], run: Run, json_path: pathlib.Path,
                   page_path: pathlib.Path) -> None:
    """Merges the successful modules' figures into ``json_path`` and re-renders the page."""
    entries = {o.name: results_page.summary_entry(o.name, o.closing_figures(),
                                                  f"python -m benchmarks.{o.name}", run.machine,
                                                  run.date, run.commit)
               for o in outcomes if o.status == "ok"}
    whole = run.whole and len(entries) == len(outcomes)
    record = {"command": "python -m benchmarks.run_all", "machine": run.machine,
              "date": run.date, "commit": run.commit, "modules": [o.name for o in outcomes],
              "minutes": round(sum(o.seconds for o in outcomes) / 60, 1)} if whole else None
    results_page.write(results_page.merge(results_page.load(json_path), entries, record),
                       json_path, page_path)
    print(f"figures of {len(entries)} module(s) written to {json_path}; page {page_path}"
          + ("; recorded as the whole make bench" if whole else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every module")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these modules")
    parser.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="skip modules")
    parser.add_argument("--timeout", type=float, help=f"seconds per module (default "
                        f"{TIMEOUT_S:.0f}, {LONG_TIMEOUT_S} for these; quick 240)")
    parser.add_argument("--results", type=pathlib.Path, help="figures JSON (default "
                        "docs/bench/results.json; not written by --quick unless given)")
    parser.add_argument("--page", type=pathlib.Path, default=results_page.RESULTS_PAGE)
    args = parser.parse_args(argv)
    results = args.results or (None if args.quick else results_page.RESULTS_JSON)
    run = Run.starting_now(measure_machine(), not (args.only or args.skip)) if results else None
    start = time.perf_counter()
    outcomes = [run_module(name, args.quick, module_timeout(name, args.timeout, args.quick))
                for name in discover(args.only, args.skip)]
    print_summary(outcomes, time.perf_counter() - start)
    if results:
        record_results(outcomes, run, results, args.page)
    return 0 if all(outcome.status == "ok" for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
