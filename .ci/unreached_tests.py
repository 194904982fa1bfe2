"""Lists the tests that a time-boxed pytest run never started.

Usage: ``python .ci/unreached_tests.py COLLECTED VERBOSE_LOG``. ``COLLECTED`` holds the output of
``pytest --collect-only -q`` with the run's own selection (one node id per line; other lines are
ignored); ``VERBOSE_LOG`` is the run's ``pytest -v`` output, where a test's node id starts a line
as soon as the test starts. Prints how many collected tests never started and their ids, in
collection order, so a run cut short by its time budget says exactly what it left untested.
"""

from __future__ import annotations

import pathlib
import sys


def collected_ids(collect_output: str) -> list[str]:
    """The node ids in ``pytest --collect-only -q`` output, in order."""
    return [line.strip() for line in collect_output.splitlines()
            if "::" in line and not line.startswith((" ", "<", "="))]


def unreached(collected: list[str], verbose_log: str) -> list[str]:
    """The ids of ``collected`` that start no line of ``verbose_log`` (never started)."""
    starts = [line.rstrip() for line in verbose_log.splitlines()]
    return [test_id for test_id in collected
            if not any(line == test_id or line.startswith(test_id + " ") for line in starts)]


def main(argv: list[str]) -> int:
    """Prints the unreached tests of ``argv = [COLLECTED, VERBOSE_LOG]``; always succeeds."""
    collect_path, log_path = (pathlib.Path(arg) for arg in argv)
    collected = collected_ids(collect_path.read_text(encoding="utf-8", errors="replace"))
    missing = unreached(collected, log_path.read_text(encoding="utf-8", errors="replace"))
    print(f"CI: {len(missing)} of {len(collected)} slow test(s) not reached"
          + (":" if missing else ""))
    for test_id in missing:
        print(f"  not reached: {test_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
