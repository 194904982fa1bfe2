"""Flickr8k judgment files: good and malformed lines, the judged matrices, and their metrics."""

import numpy as np
import pytest

from benchmarks import annotations
from benchmarks.annotations import CROWD_FILE, EXPERT_FILE, AnnotationError

A, B = "1000000001_aaaaaaaaaa.jpg", "1000000002_bbbbbbbbbb.jpg"


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_expert_lines_become_graded_and_binary_relevance(tmp_path):
    path = _write(tmp_path, EXPERT_FILE, [f"{A}\t{B}#2\t1\t1\t2", "", f"{A}\t{A}#2\t4\t4\t3"])
    first, second = annotations.parse_judgments(path, EXPERT_FILE)
    assert (first.image, first.caption_id) == (A, f"{B}#2")
    assert first.score == pytest.approx((4 / 3 - 1) / 3) and not first.relevant
    assert second.score == pytest.approx((11 / 3 - 1) / 3) and second.relevant
    assert second.source == f"{path}:3"


def test_crowd_lines(tmp_path):
    path = _write(tmp_path, CROWD_FILE, [f"{A}\t{B}#2\t0.333333333333\t1\t2",
                                         f"{B}\t{B}#0\t1.0\t3\t0"])
    first, second = annotations.parse_judgments(path, CROWD_FILE)
    assert first.score == pytest.approx(1 / 3) and not first.relevant
    assert second.score == 1.0 and second.relevant


@pytest.mark.parametrize(("file_format", "line", "message"), [
    (EXPERT_FILE, f"{A}\t{B}#2\t1\t1", "5 tab-separated columns"),
    (EXPERT_FILE, f"{A} {B}#2 1 1 2", "5 tab-separated columns"),
    (EXPERT_FILE, f"{A}\t{B}\t1\t1\t2", "caption id IMAGE#N"),
    (EXPERT_FILE, f"{A}\t{B}#2\t1\t5\t2", "1-4"),
    (EXPERT_FILE, f"{A}\t{B}#2\t1\tx\t2", "expert score 2 must be int"),
    (CROWD_FILE, f"{A}\t{B}#2\t1.5\t1\t2", r"fraction in \[0, 1\]"),
    (CROWD_FILE, f"{A}\t{B}#2\t0.3333\t2\t1", "columns out of order"),
    (CROWD_FILE, f"{A}\t{B}#2\t0\t0\t0", "at least one vote"),
    (CROWD_FILE, f"{A}\t{B}#2\tmany\t1\t2", "fraction of yes votes must be float"),
])
def test_malformed_line_names_file_and_line(tmp_path, file_format, line, message):
    path = _write(tmp_path, file_format, [f"{A}\t{A}#0\t4\t4\t4" if file_format == EXPERT_FILE
                                          else f"{A}\t{A}#0\t1.0\t3\t0", line])
    with pytest.raises(AnnotationError, match=message) as error:
        annotations.parse_judgments(path, file_format)
    assert f"{path}:2" in str(error.value)


def test_a_pair_judged_twice_is_an_error(tmp_path):
    path = _write(tmp_path, EXPERT_FILE, [f"{A}\t{B}#2\t1\t1\t2", f"{A}\t{B}#2\t3\t3\t3"])
    with pytest.raises(AnnotationError, match=f"{path}:2: .* already judged at {path}:1"):
        annotations.parse_judgments(path, EXPERT_FILE)


def test_read_judgments_reads_the_files_present(tmp_path):
    _write(tmp_path, CROWD_FILE, [f"{A}\t{B}#2\t0.5\t1\t1"])
    assert list(annotations.read_judgments(tmp_path)) == [CROWD_FILE]


def test_judged_relevance_places_scores_and_rejects_unknown_ids(tmp_path):
    path = _write(tmp_path, EXPERT_FILE, [f"{A}\t{B}#0\t4\t4\t4", f"{B}\t{A}#0\t1\t1\t1"])
    judgments = annotations.parse_judgments(path, EXPERT_FILE)
    relevance, relevant = annotations.judged_relevance(judgments, [A, B], [f"{A}#0", f"{B}#0"])
    np.testing.assert_allclose(relevance, [[0, 0], [1, 0]])
    np.testing.assert_array_equal(relevant, [[False, False], [True, False]])
    with pytest.raises(ValueError, match=f"{path}:2: image .{B}. or caption"):
        annotations.judged_relevance(judgments, [A], [f"{A}#0", f"{B}#0"])


def test_judgment_metrics_by_hand():
    image = np.eye(3, dtype=np.float32)  # images 0, 1, 2
    # caption 0 scores image 1 > image 0 > image 2; caption 1 scores image 2 highest
    text = np.array([[0.6, 0.8, 0.0], [0.0, 0.6, 0.8]], dtype=np.float32)
    relevance = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    relevant = relevance > 0.5
    values = annotations.judgment_metrics(image, text, relevance, relevant, ks=(1, 2), k=3)
    # caption 0's only relevant image ranks 2nd: DCG = 1 / log2(3), ideal 1
    assert values["t2i_ndcg"] == pytest.approx(1 / np.log2(3))
    assert (values["t2i_r1"], values["t2i_r2"], values["t2i_queries"]) == (0.0, 100.0, 1.0)
    # image 0 queries the captions: caption 0 (0.6) beats caption 1 (0.0): rank 1
    assert values["i2t_ndcg"] == pytest.approx(1.0)
    assert (values["i2t_r1"], values["i2t_queries"]) == (100.0, 1.0)
