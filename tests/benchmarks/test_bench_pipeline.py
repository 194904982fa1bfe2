"""The pipeline benchmark reads per-component times and results from the run summary."""

from benchmarks import bench_pipeline, results_page

SUMMARY = """\
host: 310 GFLOP/s (>= 150): MiniLM with the top 1 layer(s) fine-tuned, as configured
  float32 4096² matmul 310 GFLOP/s on the cores' time (160 wall-clock, load 3.1)
epoch 1 (0.201 s/step) eval: i2t_r1=40.1 rsum=270.2
Epoch 1/6
=== Pipeline run summary ===
artifacts under: /tmp/root
  CaptionExampleGen          ran       29.2s
  latest_blessed_model       ran        0.1s
  Trainer                    cached       -
  Evaluator                  FAILED    18.0s
evaluation: /tmp/root/Evaluator/evaluation/9
  metric              candidate   baseline      diff
  rsum                   249.70          -         -
  i2t_r1                  23.10          -         -
blessing: BLESSED
pushed: version 17 -> /tmp/serving/xmodal/17
"""


def test_component_seconds_from_the_summary():
    assert bench_pipeline.component_seconds(SUMMARY) == {
        "CaptionExampleGen": 29.2, "latest_blessed_model": 0.1, "Trainer": None,
        "Evaluator": 18.0}


def test_result_lines_are_the_setting_epochs_blessing_push_and_rsum():
    lines = [line for line in SUMMARY.splitlines() if bench_pipeline.RESULT_LINE.match(line)]
    assert lines == [SUMMARY.splitlines()[0], SUMMARY.splitlines()[1], SUMMARY.splitlines()[2],
                     "  rsum                   249.70          -         -",
                     "blessing: BLESSED", "pushed: version 17 -> /tmp/serving/xmodal/17"]


def test_overrides_reach_the_run_as_one_set_flag(tmp_path):
    command = bench_pipeline.pipeline_command(
        tmp_path / "data", tmp_path, ["--epochs", "1"],
        ["trainer.text_tower=mean", "trainer.batch_size=256"])
    assert command[2:] == ["pipeline", "run", "--data", str(tmp_path / "data"),
                           "--pipeline-root", str(tmp_path / "root"),
                           "--serving-dir", str(tmp_path / "serving"), "--epochs", "1",
                           "--set", "trainer.text_tower=mean", "trainer.batch_size=256"]
    assert "--set" not in bench_pipeline.pipeline_command(tmp_path, tmp_path, [], [])


def test_result_lines_become_labelled_rows_of_the_results_page():
    lines = [bench_pipeline.labelled(line) for line in SUMMARY.splitlines()
             if bench_pipeline.RESULT_LINE.match(line)]
    entry = results_page.summary_entry("bench_pipeline", lines, "cmd", {}, "d", "c")
    assert entry["rows"] == [
        ["Trainer setting", "310 GFLOP/s (>= 150): MiniLM with the top 1 layer(s) fine-tuned, "
                            "as configured"],
        ["Trainer probe", "float32 4096² matmul 310 GFLOP/s on the cores' time "
                          "(160 wall-clock, load 3.1)"],
        ["epoch 1 (0.201 s/step) eval", "i2t_r1=40.1 rsum=270.2"],
        ["Evaluator rsum", "249.70"],
        ["blessing", "BLESSED"],
        ["pushed", "version 17 -> /tmp/serving/xmodal/17"]]
