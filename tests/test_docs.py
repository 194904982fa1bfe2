"""The reference docs state what is true now: no dated runs in them.

A date belongs to one run's figures: those live in the generated ``docs/results.md`` (each
table with its run's date) and in ``docs/paper.md`` (the measured comparison with its run);
every other page under ``docs/`` describes the current code, and its history is in git.
"""

from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
DATED_PAGES = frozenset({"results.md", "paper.md"})
DATE = re.compile(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]")


def dated_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every line of ``text`` holding a YYYY-MM-DD date."""
    return [(number, line) for number, line in enumerate(text.splitlines(), 1)
            if DATE.search(line)]


def test_a_dated_line_is_found_with_its_number():
    text = "The step.\nMeasured on 2026-12-06 at load 3.\nCommit f53b67c, 384 GFLOP/s.\n"
    assert dated_lines(text) == [(2, "Measured on 2026-12-06 at load 3.")]
    assert dated_lines("Version 1796562660, 20 GFLOP/s, 12-06-2026.") == []


REFERENCE_PAGES = sorted(path.name for path in DOCS.glob("*.md") if path.name not in DATED_PAGES)


@pytest.mark.parametrize("name", REFERENCE_PAGES)
def test_reference_pages_hold_no_dates(name):
    found = dated_lines((DOCS / name).read_text(encoding="utf-8"))
    assert not found, f"docs/{name}: dated lines (a run's figures go to docs/results.md): " + \
        "; ".join(f"line {number}: {line.strip()[:80]}" for number, line in found)


def test_the_dated_pages_and_some_reference_pages_exist():
    assert {path.name for path in DOCS.glob("*.md")} >= DATED_PAGES
    assert {"architecture.md", "minilm.md", "perf.md"} <= set(REFERENCE_PAGES)
