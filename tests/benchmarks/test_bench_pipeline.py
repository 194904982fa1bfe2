"""The pipeline benchmark reads per-component times and results from the run summary."""

from benchmarks import bench_pipeline

SUMMARY = """\
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


def test_result_lines_are_the_blessing_push_and_rsum():
    lines = [line for line in SUMMARY.splitlines() if bench_pipeline.RESULT_LINE.match(line)]
    assert lines == ["  rsum                   249.70          -         -",
                     "blessing: BLESSED", "pushed: version 17 -> /tmp/serving/xmodal/17"]
