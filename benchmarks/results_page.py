"""The benchmark figures as data (``docs/bench/results.json``) and the page rendered from them.

``make bench`` (``benchmarks.run_all``) merges each finished module's figures into the JSON file
and re-renders ``docs/results.md``; ``python -m benchmarks.results_page`` re-renders the page
alone. The page is generated, so it holds the current figures only: each benchmark keeps the
command, machine, date and commit of its latest run, and history lives in git.

Figures that were copied into the JSON by hand rather than written by a run of the runner carry
``transcribed`` (where they came from); the page marks those tables and counts them. The mark
belongs to one run's figures, so a new run of the benchmark drops it (``merge``).

JSON layout::

    {"benchmarks": {"<module>": {
         "title": str, "setting": str (optional), "command": str,
         "machine": {"cpu": str, "cores": int, "matmul_gflops": float or null,
                     "load": float or str (optional)},
         "date": "YYYY-MM-DD", "commit": str,
         "columns": [str, ...], "rows": [[cell, ...], ...], "notes": [str, ...] (optional),
         "transcribed": str (optional)}},
     "run": {"command": str, "machine": {...}, "date": str, "commit": str,
             "modules": [str, ...], "minutes": float} (optional)}

``run`` is the last whole ``make bench`` (every module, all finished): the page's header names
it, and lists the tables that a later partial run (``--only``) has measured since.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
from collections.abc import Iterable, Mapping

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS_JSON = REPO / "docs" / "bench" / "results.json"
RESULTS_PAGE = REPO / "docs" / "results.md"
REQUIRED = ("title", "command", "machine", "date", "commit", "columns", "rows")
# What describes a benchmark rather than one run of it: kept when a new run replaces the figures.
DESCRIPTIVE = ("title", "setting")
SUMMARY_MARK = "== summary"
# A figure, possibly in bold: right-aligned in its column.
FIGURE = re.compile(r"^\**[0-9]")


def _cell(value: object) -> str:
    text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    return text.replace("|", "\\|")


def _is_figure(value: object) -> bool:
    return isinstance(value, (int, float)) or bool(FIGURE.match(str(value)))


def render_table(columns: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown table, every row as wide as ``columns``; columns of figures right-aligned.

    Raises:
        ValueError: a row's cell count differs from the column count.

    """
    for number, row in enumerate(rows, 1):
        if len(row) != len(columns):
            raise ValueError(f"row {number} has {len(row)} cells for {len(columns)} columns")
    numeric = [bool(rows) and all(_is_figure(row[i]) for row in rows)
               for i in range(len(columns))]
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if right else "---" for right in numeric) + " |"]
    return lines + ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]


def machine_text(machine: Mapping[str, object]) -> str:
    """One line: CPU model, cores, the float32 4096² matmul rate and the load.

    Figures recorded before the runner measured the matmul rate say so instead of a rate; a
    load given as text (a range, a remark) is shown as written.
    """
    rate = machine.get("matmul_gflops")
    parts = [f"{machine['cpu']}, {machine['cores']} cores",
             "float32 matmul rate not recorded" if rate is None
             else f"float32 4096² matmul {float(rate):.0f} GFLOP/s"]
    load = machine.get("load")
    if isinstance(load, (int, float)):
        parts.append(f"load average {load:.1f}")
    elif load:
        parts.append(f"load {load}")
    return "; ".join(parts)


def render_benchmark(name: str, entry: Mapping[str, object]) -> list[str]:
    """One benchmark's section: heading, setting, run line, table and notes.

    Raises:
        ValueError: ``entry`` lacks a required field (named in the message).

    """
    missing = [key for key in REQUIRED if key not in entry]
    if missing:
        raise ValueError(f"benchmark {name!r}: missing field(s) {missing}")
    lines = [f"## {entry['title']} (`{name}`)", ""]
    if entry.get("setting"):
        lines += [str(entry["setting"]), ""]
    lines += [f"Command: `{entry['command']}`. Machine: {machine_text(entry['machine'])}. "
              f"Date: {entry['date']}. Commit: `{entry['commit']}`.", ""]
    if entry.get("transcribed"):
        lines += [f"Copied into the JSON by hand, not written by `make bench`: "
                  f"{entry['transcribed']}", ""]
    lines += render_table(list(entry["columns"]), list(entry["rows"])) + [""]
    for note in entry.get("notes", []):
        lines += [str(note), ""]
    return lines


def run_header(run: Mapping[str, object] | None, benchmarks: Mapping[str, Mapping]) -> list[str]:
    """The page's lines on the whole ``make bench`` run its figures come from."""
    if not run:
        return ["No whole `make bench` run is on record: each table names the run that wrote "
                "it.", ""]
    lines = [f"Figures of one whole `make bench` (`{run['command']}`: {len(run['modules'])} "
             f"modules in {float(run['minutes']):.0f} min). Machine: "
             f"{machine_text(run['machine'])}. Date: {run['date']}. Commit: `{run['commit']}`.",
             ""]
    later = [f"`{name}`" for name, entry in benchmarks.items()
             if (entry["date"], entry["commit"]) != (run["date"], run["commit"])]
    if later:
        lines += [f"Measured by a later run (its table names it): {', '.join(later)}.", ""]
    return lines


def render_page(results: Mapping[str, object]) -> str:
    """The whole ``docs/results.md`` from the parsed JSON: a pure function of ``results``."""
    lines = ["# Results", "",
             "Generated from `docs/bench/results.json` by `benchmarks/results_page.py`; "
             "`make bench` re-runs the benchmarks and regenerates both, so edit neither by hand. "
             "Each table holds one benchmark's latest figures with the command, machine, date "
             "and commit of that run. `docs/perf.md` explains the training-step figures.", ""]
    benchmarks = results["benchmarks"]
    lines += run_header(results.get("run"), benchmarks)
    transcribed = sum(1 for entry in benchmarks.values() if entry.get("transcribed"))
    if transcribed:
        lines += [f"{transcribed} of the {len(benchmarks)} tables hold figures transcribed into "
                  "the JSON by hand, not written by `make bench`; each says where they came "
                  "from. The next `make bench` replaces them with measured ones.", ""]
    for name, entry in benchmarks.items():
        lines += render_benchmark(name, entry)
    return "\n".join(lines).rstrip("\n") + "\n"


def summary_entry(name: str, closing_lines: Iterable[str], command: str,
                  machine: Mapping[str, object], date: str, commit: str) -> dict:
    """A benchmark's entry from the summary block a module printed (``label: value`` lines).

    The ``== summary: <title>`` line gives the title; each other line becomes a row, split at
    its first ``": "`` (a line without one is a figure with no label).
    """
    title, rows = name, []
    for line in closing_lines:
        if line.startswith(SUMMARY_MARK):
            title = line.removeprefix(SUMMARY_MARK).strip(" :=") or name
        elif line.strip():
            label, _, value = line.partition(": ")
            rows.append([label.strip(), value.strip()] if value else ["", line.strip()])
    return {"title": title, "command": command, "machine": dict(machine), "date": date,
            "commit": commit, "columns": ["figure", "value"], "rows": rows}


def merge(results: Mapping[str, object], entries: Mapping[str, dict],
          run: Mapping[str, object] | None = None) -> dict:
    """``results`` with ``entries`` replacing their benchmarks' figures (a new dict).

    A replaced benchmark keeps its place and its ``DESCRIPTIVE`` fields; its notes and its
    ``transcribed`` mark go, since they described the old figures. New benchmarks are appended.
    ``run`` (a whole ``make bench``) replaces the recorded run; without it the old one stays.
    """
    benchmarks = dict(results.get("benchmarks", {}))
    for name, entry in entries.items():
        old = benchmarks.get(name, {})
        kept = {key: old[key] for key in DESCRIPTIVE if key in old}
        benchmarks[name] = {**entry, **kept}
    return {**results, "benchmarks": benchmarks, **({"run": dict(run)} if run else {})}


def load(path: pathlib.Path) -> dict:
    """The results file, or an empty one when it does not exist yet."""
    if not path.exists():
        return {"benchmarks": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def write(results: Mapping[str, object], json_path: pathlib.Path,
          page_path: pathlib.Path) -> None:
    """Writes the JSON file and the page rendered from it."""
    page = render_page(results)  # render first: a bad entry must not leave a half-written pair
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    page_path.write_text(page, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Re-renders docs/results.md from the JSON.")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_JSON)
    parser.add_argument("--page", type=pathlib.Path, default=RESULTS_PAGE)
    args = parser.parse_args(argv)
    args.page.write_text(render_page(load(args.results)), encoding="utf-8")


if __name__ == "__main__":
    main()
