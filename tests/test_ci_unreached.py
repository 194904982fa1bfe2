"""``.ci/unreached_tests.py``: which slow tests a time-boxed CI run never started."""

import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("unreached_tests",
                                               REPO / ".ci" / "unreached_tests.py")
unreached_tests = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(unreached_tests)

COLLECTED = """tests/a.py::test_one
tests/a.py::test_two[x-1]
tests/b.py::test_three

3/40 tests collected (37 deselected) in 1.20s
"""
LOG = "\n".join([
    "============================= test session starts ==============================",
    "collecting ... collected 40 items / 37 deselected / 3 selected",
    "",
    "tests/a.py::test_one PASSED                                              [ 33%]",
    "tests/a.py::test_two[x-1] ",  # pytest -v prints the id as the test starts
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!! KeyboardInterrupt !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
])

def test_collected_ids_keep_order_and_skip_the_summary():
    assert unreached_tests.collected_ids(COLLECTED) == [
        "tests/a.py::test_one", "tests/a.py::test_two[x-1]", "tests/b.py::test_three"]


def test_an_interrupted_test_was_reached_and_a_later_one_was_not():
    ids = unreached_tests.collected_ids(COLLECTED)
    assert unreached_tests.unreached(ids, LOG) == ["tests/b.py::test_three"]


def test_a_prefix_of_another_id_is_not_taken_for_it():
    log = "tests/a.py::test_one_more PASSED\n"
    assert unreached_tests.unreached(["tests/a.py::test_one"], log) == ["tests/a.py::test_one"]


def test_main_prints_the_count_and_each_unreached_id(tmp_path, capsys):
    (tmp_path / "ids").write_text(COLLECTED, encoding="utf-8")
    (tmp_path / "log").write_text(LOG, encoding="utf-8")
    assert unreached_tests.main([str(tmp_path / "ids"), str(tmp_path / "log")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "CI: 1 of 3 slow test(s) not reached:", "  not reached: tests/b.py::test_three"]
