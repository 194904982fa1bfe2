"""The slow-host benchmark caps oneDNN and the cores of its child and judges the budget."""

import os
import pathlib
import sys

import pytest

from benchmarks import bench_slow_host, results_page

CHILD_OUTPUT = """\
[bench] starting
== summary: bench_pipeline (python -m pipeline run, defaults, fresh root) ==
host: Intel(R) Xeon(R) Processor, 2 cores, float32 4096² matmul 38.3 GFLOP/s (wall, median)
wall: 836 s, peak RSS 4.41 GiB
Trainer: 441.0 s
Trainer setting: 38 GFLOP/s; text tower MiniLM with the top 1 layer(s) fine-tuned, as configured
"""


def test_the_child_gets_the_isa_cap_and_keeps_the_rest_of_the_environment():
    env = bench_slow_host.child_environment({"PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "ALL"}, "AVX2")
    assert env == {"PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_an_unknown_isa_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="--isa 'AVX3'"):
        bench_slow_host.child_environment({}, "AVX3")


def test_each_run_gets_its_own_cores_where_the_host_has_enough():
    assert bench_slow_host.child_cores({5, 2, 7}, 2) == [{2, 5}]
    assert bench_slow_host.child_cores({5, 2, 7, 1}, 2, runs=2) == [{1, 2}, {5, 7}]
    assert bench_slow_host.child_cores({5, 2, 7}, 1, runs=2) == [{2}, {5}]
    with pytest.raises(ValueError, match="--cores 4: this process may use 3"):
        bench_slow_host.child_cores({5, 2, 7}, 4)
    with pytest.raises(ValueError, match="--cores 0"):
        bench_slow_host.child_cores({5, 2, 7}, 0)


def test_runs_share_the_first_cores_one_after_the_other_where_the_host_is_too_small():
    sets = bench_slow_host.child_cores({5, 2, 7}, 2, runs=2)
    assert sets == [{2, 5}, {2, 5}]
    assert not bench_slow_host.disjoint(sets)
    assert bench_slow_host.disjoint([{2}, {5}])


def test_summary_labels_each_run_and_judges_its_budget():
    over = CHILD_OUTPUT.replace("wall: 836 s", "wall: 1501 s")
    runs = [(), ("trainer.minilm_trainable_layers=0",)]
    lines = bench_slow_host.summary([over, CHILD_OUTPUT], runs, "SSE41", 1, side_by_side=True)
    assert lines[0] == ("== summary: bench_slow_host (default, trainer.minilm_trainable_layers=0;"
                        " oneDNN capped at SSE41, 1 core(s) per run) ==")
    assert lines[1] == ("emulation: ONEDNN_MAX_CPU_ISA=SSE41, CPU affinity 1 core(s) per run, "
                        "2 run(s) side by side on separate cores")
    assert lines[2] == "[default] budget: 1501 s of 1500 s, OVER the budget"
    assert lines[3] == ("[default] host: Intel(R) Xeon(R) Processor, 2 cores, float32 4096² "
                        "matmul 38.3 GFLOP/s (wall, median)")
    frozen = lines.index("[trainer.minilm_trainable_layers=0] budget: 836 s of 1500 s, "
                         "within the budget")
    assert frozen == 2 + 5
    assert lines[frozen + 3] == "[trainer.minilm_trainable_layers=0] Trainer: 441.0 s"


def test_the_summary_rows_keep_each_run_apart_on_the_results_page():
    entry = results_page.summary_entry(
        "bench_slow_host", bench_slow_host.summary([CHILD_OUTPUT], [()], "AVX2", 2, False),
        "python -m benchmarks.bench_slow_host", {"cpu": "x", "cores": 2}, "2026-01-01", "abc")
    assert entry["rows"][1:3] == [["[default] budget", "836 s of 1500 s, within the budget"],
                                  ["[default] host", CHILD_OUTPUT.splitlines()[2][6:]]]


def test_a_child_without_a_summary_is_an_error_showing_its_last_lines():
    with pytest.raises(ValueError, match=r"\(default\) printed no summary with a wall time:\n"
                                         r".bench. starting"):
        bench_slow_host.run_summary("[bench] starting\n", ())


def test_the_children_run_the_default_and_the_frozen_option_unless_told_otherwise():
    args = bench_slow_host.parse_args(["--quick", "--data", "/d"])
    assert [bench_slow_host.child_command(args, run) for run in bench_slow_host.RUNS] == [
        [sys.executable, "-m", "benchmarks.bench_pipeline", "--quick", "--data=/d"],
        [sys.executable, "-m", "benchmarks.bench_pipeline", "--quick", "--data=/d",
         "--set", "trainer.minilm_trainable_layers=0"]]
    kept = bench_slow_host.child_command(args, (), pathlib.Path("/k/run0"))
    assert kept[4] == "--keep=/k/run0"


def test_side_by_side_children_run_at_once_and_a_failure_shows_its_stderr(tmp_path):
    flag = tmp_path / "first"
    waits = f"import pathlib, time; p = pathlib.Path({str(flag)!r})\n" \
            "for _ in range(200):\n    time.sleep(0.05)\n    if p.exists(): break\n" \
            "else: raise SystemExit('the other child never ran')\nprint('waited')"
    touches = f"import pathlib; pathlib.Path({str(flag)!r}).touch(); print('touched')"
    cpus = sorted(os.sched_getaffinity(0))
    commands = [[sys.executable, "-c", waits], [sys.executable, "-c", touches]]
    if len(cpus) >= 2:
        assert bench_slow_host.run_children(commands, dict(os.environ),
                                            [{cpus[0]}, {cpus[1]}]) == ["waited\n", "touched\n"]
    with pytest.raises(RuntimeError, match="exited with 3 after .*\nboom"):
        bench_slow_host.run_children(
            [[sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"]],
            dict(os.environ), [{cpus[0]}])
