"""The rule that every slow test states its expected duration (``tests/conftest.py``)."""

import dataclasses

import pytest

from tests.conftest import pytest_collection_modifyitems, slow_marks_without_duration


@dataclasses.dataclass
class FakeItem:
    nodeid: str
    marks: dict

    def get_closest_marker(self, name):
        return self.marks.get(name)


def _item(nodeid, *args, **kwargs):
    return FakeItem(nodeid, {"slow": pytest.mark.slow(*args, **kwargs).mark})


def test_slow_marks_without_minutes_are_reported_by_node_id():
    items = [_item("t.py::ok", minutes=3), _item("t.py::half", minutes=0.5),
             _item("t.py::bare"), _item("t.py::zero", minutes=0), _item("t.py::text", minutes="2"),
             FakeItem("t.py::fast", {})]
    assert slow_marks_without_duration(items) == ["t.py::bare", "t.py::zero", "t.py::text"]


def test_collection_stops_naming_a_slow_test_without_duration():
    with pytest.raises(pytest.UsageError, match=r"slow\(minutes=N\): t.py::bare$"):
        pytest_collection_modifyitems([_item("t.py::ok", minutes=1), _item("t.py::bare")])
