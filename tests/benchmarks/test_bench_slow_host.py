"""The slow-host benchmark caps oneDNN and the cores of its child and judges the budget."""

import sys

import pytest

from benchmarks import bench_slow_host

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


def test_the_child_runs_on_the_first_cores_it_may_use():
    assert bench_slow_host.child_cores({5, 2, 7}, 2) == {2, 5}
    with pytest.raises(ValueError, match="--cores 4: this process may use 3"):
        bench_slow_host.child_cores({5, 2, 7}, 4)
    with pytest.raises(ValueError, match="--cores 0"):
        bench_slow_host.child_cores({5, 2, 7}, 0)


def test_summary_relabels_the_child_summary_and_judges_the_budget():
    lines = bench_slow_host.summary(CHILD_OUTPUT, "SSE41", 1)
    assert lines[0].startswith("== summary: bench_slow_host (default run, oneDNN capped at SSE41")
    assert lines[1:3] == ["emulation: ONEDNN_MAX_CPU_ISA=SSE41, CPU affinity 1 core(s)",
                          "budget: 836 s of 1500 s, within the budget"]
    assert lines[3:] == CHILD_OUTPUT.splitlines()[2:]
    over = CHILD_OUTPUT.replace("wall: 836 s", "wall: 1501 s")
    assert bench_slow_host.summary(over, "SSE41", 1)[2] == (
        "budget: 1501 s of 1500 s, OVER the budget")


def test_a_child_without_a_summary_is_an_error_showing_its_last_lines():
    with pytest.raises(ValueError, match="no summary with a wall time:\n.bench. starting"):
        bench_slow_host.summary("[bench] starting\n", "SSE41", 1)


def test_the_child_runs_the_default_as_configured_unless_told_otherwise():
    args = bench_slow_host.parse_args(["--quick", "--data", "/d"])
    assert bench_slow_host.child_command(args) == [
        sys.executable, "-m", "benchmarks.bench_pipeline", "--quick", "--data=/d"]
    frozen = bench_slow_host.parse_args(["--set", "trainer.minilm_trainable_layers=0"])
    assert bench_slow_host.child_command(frozen)[-2:] == [
        "--set", "trainer.minilm_trainable_layers=0"]
    title = bench_slow_host.summary(CHILD_OUTPUT, "SSE41", 1, frozen.set)[0]
    assert title.startswith("== summary: bench_slow_host (--set trainer.minilm_trainable_layers=0,")
