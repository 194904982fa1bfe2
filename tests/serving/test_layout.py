"""The one plain-name rule of serving/layout.py, as model names and index names apply it."""

import pytest

from pipeline import config as config_lib
from serving.collection import layout as index_layout
from serving.layout import NAME_MAX, is_plain_name


@pytest.mark.parametrize("name", ["a", "xmodal", "Model_2.v-1", "a..b", "9" * NAME_MAX])
def test_plain_names(name):
    assert is_plain_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "-x", "_x", "a/b", "a b", "x\n", "é",
                                  "9" * (NAME_MAX + 1), None, 3])
def test_names_that_are_not_plain(name):
    assert not is_plain_name(name)


def test_models_and_indexes_refuse_the_same_names_within_their_lengths():
    for name in ("x\n", "-x", "a/b"):
        with pytest.raises(config_lib.ConfigError, match="model_name"):
            config_lib.from_dict({"model_name": name})
        with pytest.raises(ValueError, match="is not a plain name"):
            index_layout.check_name(name)
    assert index_layout.check_name("x" * index_layout.NAME_LONGEST)
    with pytest.raises(ValueError, match="1 to 64 ASCII letters"):
        index_layout.check_name("x" * (index_layout.NAME_LONGEST + 1))
