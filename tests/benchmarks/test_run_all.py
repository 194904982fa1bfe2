import collections

import pytest

from benchmarks import run_all


def test_discover_finds_bench_and_report_modules_only():
    names = run_all.discover(None, [])
    assert "bench_vs_paper" in names and "bench_mining_scaling" in names
    assert names == sorted(names)
    assert all(name.startswith(("bench_", "report_")) for name in names)
    assert "run_all" not in names and "paper_loop" not in names and "harness" not in names


def test_discover_only_and_skip():
    assert run_all.discover(["bench_vs_paper"], []) == ["bench_vs_paper"]
    assert "bench_vs_paper" not in run_all.discover(None, ["bench_vs_paper"])


def test_discover_rejects_unknown_names():
    with pytest.raises(ValueError, match="bench_nope"):
        run_all.discover(["bench_nope"], [])


def test_closing_figures_prefers_the_last_summary_block():
    outcome = run_all.Outcome("x", lines=["a", "== summary: one", "b", "== summary: two", "c"])
    assert outcome.closing_figures() == ["== summary: two", "c"]
    plain = run_all.Outcome("y", lines=[str(i) for i in range(20)])
    assert plain.closing_figures() == [str(i) for i in range(12, 20)]


def test_tensorflow_startup_lines_are_recognized():
    assert run_all.TF_LOG.match("2026-11-29 01:04:39.530278: I tensorflow/core/util/port.cc:113] x")
    assert not run_all.TF_LOG.match("paper loop: 95.0 s/epoch")


def test_library_log_records_are_shown_but_never_taken_as_figures(monkeypatch, capsys):
    beam = ("WARNING:apache_beam.runners.portability.local_job_service:Worker: severity: WARN "
            "message: \"No semi_persistent_directory found\"")
    retrace = "WARNING:tensorflow:5 out of the last 5 calls to <function f> triggered retracing."
    output = ["== summary: x", "rate: 3.0 /s", beam, retrace, "2 workers: 1.68x"]

    class Process:
        stdout = (line + "\n" for line in output)

    outcome, keep = run_all.Outcome("bench_x"), collections.deque()
    run_all._pump(Process(), outcome, keep)
    assert list(keep) == ["== summary: x", "rate: 3.0 /s", "2 workers: 1.68x"]
    assert beam in capsys.readouterr().out
    assert not run_all.LIBRARY_LOG.match("rate: 3.0 /s")
    assert not run_all.LIBRARY_LOG.match("WARNING: the summary's own remark")


def test_bench_slow_host_gets_a_longer_limit_unless_one_is_given():
    assert run_all.module_timeout("bench_slow_host", None, quick=False) == 5400.0
    assert run_all.module_timeout("bench_eval", None, quick=False) == 1800.0
    assert run_all.module_timeout("bench_slow_host", None, quick=True) == 240.0
    assert run_all.module_timeout("bench_slow_host", 60.0, quick=False) == 60.0
