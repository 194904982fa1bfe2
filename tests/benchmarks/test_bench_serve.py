"""bench_serve's figures: the summary block it prints and what make bench records of it."""

from benchmarks import results_page, serve_load
from benchmarks.serve_load import LoadSpec, Report, Sample

MACHINE = {"cpu": "CPU", "cores": 2, "matmul_gflops": 100.0, "load": 1.0}


def report(samples):
    return Report(samples, pushed_version=7, pushed_at=10.0,
                  rss_mib={"before (after warm-up)": 800.0, "peak": 900.0, "after": 850.0},
                  machine=MACHINE)


def test_summary_reports_throughput_latency_the_switch_and_memory(capsys):
    samples = [Sample("text", t, 0.1, 200, 1 if t < 11 else 7) for t in range(20)]
    samples += [Sample("photo", t + 0.5, 0.3, 200, 1 if t < 11 else 7) for t in range(20)]
    assert serve_load.print_summary(report(samples), LoadSpec(16, 20.0, 10.0), "toy")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("== summary: bench_serve (16 clients, 20 s")
    assert lines[1] == "throughput: 2.0 requests/s (40 requests: 20 text, 20 photo)"
    assert lines[2] == "failed requests: 0"
    assert lines[3] == "latency text: p50 100.0 ms, p99 100.0 ms"
    assert lines[5] == ("new version: pushed at 10.0 s, first answer from it 1.1 s later, "
                        "answers from the old version after that: 0")
    assert lines[6] == "service memory (RSS): before (after warm-up) 800 MiB, peak 900 MiB, " \
                       "after 850 MiB"
    entry = results_page.summary_entry("bench_serve", lines, "cmd", MACHINE, "2026-12-06", "c")
    assert entry["rows"][1] == ["failed requests", "0"]


def test_a_failed_request_or_a_version_never_seen_fails_the_run(capsys):
    ok = [Sample("text", 1.0, 0.1, 200, 7)]
    assert not serve_load.print_summary(
        report(ok + [Sample("photo", 2.0, 0.1, 0, None, "ConnectionResetError")]),
        LoadSpec(1, 5.0, 1.0), "toy")
    assert "failed: photo at 2.0 s: 0 ConnectionResetError" in capsys.readouterr().out
    assert not serve_load.print_summary(report([Sample("text", 1.0, 0.1, 200, 1)]),
                                        LoadSpec(1, 5.0, 1.0), "toy")
