import json

import pytest

from benchmarks import machine, results_page, run_all

MACHINE = {"cpu": "Test CPU @ 1GHz", "cores": 2, "matmul_gflops": 307.6, "load": 1.25}
ENTRY = {"title": "Mining", "setting": "B = 128.", "command": "python -m benchmarks.bench_x",
         "machine": MACHINE, "date": "2026-12-02", "commit": "abc1234",
         "columns": ["bank", "s / step", "note"],
         "rows": [[10000, 0.018, "small"], [100000, "**0.147**", "a|b"]],
         "notes": ["Linear in the bank."]}


def test_render_page_is_the_hand_written_markdown():
    copied = {**ENTRY, "transcribed": "from a test."}
    page = results_page.render_page({"benchmarks": {"bench_x": copied, "bench_y": ENTRY}})
    assert page.splitlines()[4:24] == [
        "No whole `make bench` run is on record: each table names the run that wrote it.",
        "",
        "1 of the 2 tables hold figures transcribed into the JSON by hand, not written by "
        "`make bench`; each says where they came from. The next `make bench` replaces them "
        "with measured ones.",
        "",
        "## Mining (`bench_x`)",
        "",
        "B = 128.",
        "",
        "Command: `python -m benchmarks.bench_x`. Machine: Test CPU @ 1GHz, 2 cores; float32 "
        "4096² matmul 308 GFLOP/s; load average 1.2. Date: 2026-12-02. Commit: `abc1234`.",
        "",
        "Copied into the JSON by hand, not written by `make bench`: from a test.",
        "",
        "| bank | s / step | note |",
        "| ---: | ---: | --- |",
        "| 10,000 | 0.018 | small |",
        "| 100,000 | **0.147** | a\\|b |",
        "",
        "Linear in the bank.",
        "",
        "## Mining (`bench_y`)",
    ]
    assert page.startswith("# Results\n") and page.endswith("Linear in the bank.\n")
    assert page.count("Copied into the JSON by hand") == 1


def test_machine_text_without_a_recorded_rate_and_with_a_load_remark():
    old = {"cpu": "Test CPU", "cores": 2, "matmul_gflops": None, "load": "1.3-1.9"}
    assert results_page.machine_text(old) == (
        "Test CPU, 2 cores; float32 matmul rate not recorded; load 1.3-1.9")


def test_a_row_of_the_wrong_width_is_an_error():
    with pytest.raises(ValueError, match="row 2 has 1 cells for 2 columns"):
        results_page.render_table(["a", "b"], [[1, 2], [3]])


def test_a_missing_field_names_the_benchmark_and_field():
    entry = {key: value for key, value in ENTRY.items() if key != "commit"}
    with pytest.raises(ValueError, match=r"'bench_x': missing field\(s\) \['commit'\]"):
        results_page.render_page({"benchmarks": {"bench_x": entry}})


def test_summary_entry_turns_labelled_lines_into_rows():
    lines = ["== summary: bench_x (d=1024) ==", "machine: 2 CPUs", "", "exact 4.15x: ok",
             "no label here"]
    entry = results_page.summary_entry("bench_x", lines, "cmd", MACHINE, "2026-12-05", "c0ffee")
    assert entry["title"] == "bench_x (d=1024)"
    assert entry["rows"] == [["machine", "2 CPUs"], ["exact 4.15x", "ok"], ["", "no label here"]]
    assert (entry["command"], entry["date"], entry["commit"]) == ("cmd", "2026-12-05", "c0ffee")


def test_merge_replaces_figures_keeps_description_and_order():
    results = {"benchmarks": {"bench_x": {**ENTRY, "transcribed": "by hand"},
                              "bench_y": {"title": "Y"}}}
    new = {"title": "bench_x", "rows": [["a", "1"]], "commit": "new"}
    merged = results_page.merge(results, {"bench_x": new, "bench_z": {"title": "Z"}})
    assert list(merged["benchmarks"]) == ["bench_x", "bench_y", "bench_z"]
    assert merged["benchmarks"]["bench_x"] == {"title": "Mining", "setting": "B = 128.",
                                               "rows": [["a", "1"]], "commit": "new"}
    assert results["benchmarks"]["bench_x"]["transcribed"] == "by hand"


def test_a_make_bench_of_every_benchmark_leaves_no_transcribed_figures_on_the_page():
    committed = results_page.load(results_page.RESULTS_JSON)
    first = next(iter(committed["benchmarks"]))
    committed["benchmarks"][first] = {**committed["benchmarks"][first], "transcribed": "by hand"}
    assert "transcribed" in results_page.render_page(committed)
    fresh = {name: results_page.summary_entry(name, ["a: 1"], "cmd", MACHINE, "2026-12-07",
                                              "c0ffee") for name in committed["benchmarks"]}
    page = results_page.render_page(results_page.merge(committed, fresh))
    assert "transcribed" not in page.lower() and "copied into the json" not in page.lower()


def test_record_results_writes_the_json_and_its_page(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "current_commit", lambda: "c0ffee")
    json_path, page_path = tmp_path / "bench" / "results.json", tmp_path / "results.md"
    outcomes = [run_all.Outcome("bench_x", status="ok", lines=["== summary: X", "a: 1"]),
                run_all.Outcome("bench_y", status="failed (rc 1)", lines=["== summary: Y"])]
    run = run_all.Run.starting_now(MACHINE, whole=True)
    run_all.record_results(outcomes, run, json_path, page_path)
    written = json.loads(json_path.read_text(encoding="utf-8"))
    assert list(written["benchmarks"]) == ["bench_x"]
    assert written["benchmarks"]["bench_x"]["rows"] == [["a", "1"]]
    assert written["benchmarks"]["bench_x"]["commit"] == "c0ffee"
    assert "run" not in written  # a module failed: not a whole make bench
    page = page_path.read_text(encoding="utf-8")
    assert page == results_page.render_page(written)
    assert "No whole `make bench` run is on record" in page


def test_a_whole_run_in_which_every_module_finishes_heads_the_page(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "current_commit", lambda: "c0ffee")
    json_path, page_path = tmp_path / "results.json", tmp_path / "results.md"
    outcomes = [run_all.Outcome(name, status="ok", seconds=90.0, lines=["a: 1"])
                for name in ("bench_x", "bench_y")]
    run_all.record_results(outcomes, run_all.Run(MACHINE, "2026-12-07", "c0ffee", whole=False),
                           json_path, page_path)
    assert "run" not in json.loads(json_path.read_text(encoding="utf-8"))  # --only: partial
    run_all.record_results(outcomes, run_all.Run(MACHINE, "2026-12-07", "c0ffee", whole=True),
                           json_path, page_path)
    written = json.loads(json_path.read_text(encoding="utf-8"))
    assert written["run"] == {"command": "python -m benchmarks.run_all", "machine": MACHINE,
                              "date": "2026-12-07", "commit": "c0ffee",
                              "modules": ["bench_x", "bench_y"], "minutes": 3.0}
    assert page_path.read_text(encoding="utf-8").splitlines()[4] == (
        "Figures of one whole `make bench` (`python -m benchmarks.run_all`: 2 modules in 3 min)."
        " Machine: Test CPU @ 1GHz, 2 cores; float32 4096² matmul 308 GFLOP/s; load average "
        "1.2. Date: 2026-12-07. Commit: `c0ffee`.")
    # a later partial run re-measures one table: the header says which
    run_all.record_results(outcomes[:1], run_all.Run(MACHINE, "2026-12-08", "d00d", whole=False),
                           json_path, page_path)
    later = json.loads(json_path.read_text(encoding="utf-8"))
    assert later["run"]["commit"] == "c0ffee"
    assert "Measured by a later run (its table names it): `bench_x`." in (
        page_path.read_text(encoding="utf-8"))


def test_the_committed_page_is_rendered_from_the_committed_json():
    results = results_page.load(results_page.RESULTS_JSON)
    assert results["benchmarks"], "docs/bench/results.json holds no benchmark"
    assert results_page.RESULTS_PAGE.read_text(encoding="utf-8") == results_page.render_page(
        results)


def test_cpu_model_reads_the_model_name(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU @ 1GHz\n", encoding="utf-8")
    assert machine.cpu_model(cpuinfo) == "Test CPU @ 1GHz"


def test_every_table_of_the_committed_page_is_one_that_make_bench_writes():
    committed = results_page.load(results_page.RESULTS_JSON)
    modules = set(run_all.discover(None, []))
    assert set(committed["benchmarks"]) <= modules, sorted(set(committed["benchmarks"]) - modules)
