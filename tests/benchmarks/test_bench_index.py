"""``python -m benchmarks.bench_index --quick``, the command docs/collection.md names (slow)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow(minutes=5)


def test_quick_run_prints_every_figure_with_the_jobs_ratio_on_both_photo_sets(
        shipped_image_backbone):
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_index", "--quick"],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    summary = dict(line.split(": ", 1) for line in out.split("== summary", 1)[1].splitlines()
                   if ": " in line)
    assert re.search(r"^\(a\) embedding job on the 1,300 shared JPEGs: [\d.]+ photos/s \(1300 "
                     r"JPEGs", out, re.MULTILINE), out
    assert "(a) embedding job on the 300 JPEGs of images/ alone" in out
    assert 0 < float(summary["job / one-process %"]) < 200
    assert 0 < float(summary["job / one-process % on images/ (300)"]) < 200
    assert summary["rows"] == "100000"
    assert float(summary["recall@10"]) >= 0.95  # ScaNN against the exact scan
    assert out.rstrip().splitlines()[-1].startswith("recall@10: ")
