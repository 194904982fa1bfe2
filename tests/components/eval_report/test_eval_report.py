import math

import numpy as np
import pytest

from components.eval_report import data, render

E0, E1 = np.eye(3)[:2]
DIAG = np.array([1.0, 1.0, 0.0]) / math.sqrt(2.0)


def _hand_embeddings():
    # Image A owns 5 captions, image B one (as in tests/trainer/test_metrics.py):
    # t2i ranks [1, 2, 1, 2, 2, 2] for captions A#0..A#4, B#0; i2t ranks A -> 1, B -> 4.
    text = np.stack([E0, E1, DIAG, E1, -E0, E0]).astype(np.float32)
    return data.EvalEmbeddings(
        caption_ids=("A#0", "A#1", "A#2", "A#3", "A#4", "B#0"),
        captions=("a zero", "a one", "a two", "a three", "a four", "b zero"),
        text_image_ids=("A", "A", "A", "A", "A", "B"), text=text,
        gallery=("A", "B"), image=np.stack([E0, E1]).astype(np.float32))


def test_recall_curves_hand_computed():
    curves = data.recall_curves(_hand_embeddings(), max_k=4)
    np.testing.assert_allclose(curves["t2i"], [100 / 3, 100, 100, 100])
    np.testing.assert_allclose(curves["i2t"], [50, 50, 50, 100])


def test_qualitative_top_images_and_hits():
    results = data.qualitative(_hand_embeddings(), num_queries=2, top=1)
    assert [r.caption_id for r in results] == ["A#0", "B#0"]
    first, last = results
    assert first.top == (("A", "a zero", True),) and first.hit and first.truth_rank == 1
    # B#0 (= E0) prefers image A; B is at rank 2 and not shown with top=1.
    assert last.top == (("A", "a zero", False),) and not last.hit and last.truth_rank == 2


def test_render_html_escapes_and_shows_verdict():
    rows = [data.MetricRow("rsum", 250.0, 240.0, 10.0), data.MetricRow("t2i_r1", 12.5)]
    query = data.QueryResult("x#0", "a <b> dog", "x", 3, (("y", "cat & dog", False),))
    page = render.render_html("T", rows, False, ["rsum = 250 fails lower_bound"], b"PNG",
                              [query])
    assert "a &lt;b&gt; dog" in page and "cat &amp; dog" in page
    assert "<td>250.00</td><td>240.00</td><td>+10.00</td>" in page
    assert "<td>12.50</td><td>–</td><td>–</td>" in page
    assert "not blessed" in page and "ground truth at rank 3" in page


@pytest.mark.slow(minutes=1)
@pytest.mark.e2e
def test_executor_writes_report_next_to_evaluation(tmp_path):
    from components.eval_report import component, executor
    from components.retrieval_metrics import build_eval_config
    from tests.components import tiny_retrieval_model as tiny

    tiny.make_workspace(tmp_path)
    found = tiny.artifacts(tmp_path)
    config = build_eval_config(rsum_lower_bound=0.0, with_ndcg=False)
    evaluation_uri, _, _ = tiny.run_evaluator(tmp_path, "run", config, baseline="other")
    from tfx.types import standard_artifacts

    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = evaluation_uri
    report = component.EvalReport()
    report.uri = str(tmp_path / "report")
    executor.Executor().Do(
        {"evaluation": [evaluation], "model": [found["good"]],
         "baseline_model": [found["other"]], "examples": [found["examples"]]},
        {"report": [report]}, {"split": "eval", "num_queries": 3, "max_k": 5})
    page = (tmp_path / "report" / "index.html").read_text()
    assert (tmp_path / "report" / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"
    assert "Validation passed" in page and "rsum" in page and "i2t_meanr" in page
    rows, ok, failures = data.metric_rows(evaluation_uri)
    rsum = next(r for r in rows if r.name == "rsum")
    assert ok and not failures and rsum.diff == pytest.approx(rsum.candidate - rsum.baseline)
    assert f"<td>{rsum.candidate:.2f}</td><td>{rsum.baseline:.2f}</td>" in page
    assert page.count("<h3>") == 3
    assert report.get_string_custom_property("report_path") == executor.report_path(report.uri)
