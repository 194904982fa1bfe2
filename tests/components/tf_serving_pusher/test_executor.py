"""TFServingPusher component + executor: blessing, artifact properties, stock-Pusher contract."""

import os

import pytest
from tfx import types
from tfx.types import artifact_utils, standard_artifacts

from components.tf_serving_pusher.component import TFServingPusher
from components.tf_serving_pusher.executor import Executor
from serving.toy_model import write_toy_encoder
from tests.components.tf_serving_pusher.test_push import EVAL_ROWS, write_examples


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pusher")
    model = standard_artifacts.Model()
    model.uri = str(root / "model")
    write_toy_encoder(root / "model" / "Format-Serving", 4, 8)
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    write_examples(root / "examples" / "Split-eval" / "data-00000-of-00001.gz", EVAL_ROWS)
    return root, model, examples


def _blessing(root, blessed: int):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(root / f"blessing{blessed}")
    blessing.set_int_custom_property("blessed", blessed)
    return blessing


def _run(root, model, examples, blessing, name):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(root / f"pushed-{name}")
    exec_properties = {"serving_dir": str(root / "serving"), "model_name": "xm",
                       "serving_base_path": "/models", "num_versions": 2,
                       "gallery_split": "eval", "search_k": 2, "chunk_size": 2}
    Executor().Do({"model": [model], "model_blessing": [blessing], "examples": [examples]},
                  {"pushed_model": [pushed]}, exec_properties)
    return pushed


def test_unblessed_model_is_not_pushed(inputs):
    root, model, examples = inputs
    pushed = _run(root, model, examples, _blessing(root, 0), "unblessed")
    assert pushed.get_int_custom_property("pushed") == 0
    assert not (root / "serving").exists()


def test_blessed_model_is_pushed_once(inputs):
    root, model, examples = inputs
    pushed = _run(root, model, examples, _blessing(root, 1), "first")
    version = pushed.get_string_custom_property("pushed_version")
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_destination") == \
        str(root / "serving" / "xm" / version)
    assert pushed.get_string_custom_property("search_destination") == \
        str(root / "serving" / "xm_search" / version)
    assert os.path.exists(os.path.join(pushed.uri, "saved_model.pb"))  # archived like stock
    assert "num_versions: 2" in (root / "serving" / "models.config").read_text()
    again = _run(root, model, examples, _blessing(root, 1), "again")
    assert again.get_int_custom_property("pushed") == 0
    assert again.get_string_custom_property("pushed_version") == version
    assert os.listdir(root / "serving" / "xm") == [version]


def test_missing_gallery_split_is_a_clear_error(inputs, tmp_path):
    root, model, _ = inputs
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    examples.split_names = artifact_utils.encode_split_names(["train"])
    with pytest.raises(ValueError, match="not the gallery split 'eval'"):
        _run(tmp_path, model, examples, _blessing(tmp_path, 1), "x")


def test_component_wiring_and_early_validation():
    model = types.Channel(type=standard_artifacts.Model)
    examples = types.Channel(type=standard_artifacts.Examples)
    blessing = types.Channel(type=standard_artifacts.ModelBlessing)
    pusher = TFServingPusher(model=model, examples=examples, model_blessing=blessing,
                             serving_dir="/srv", model_name="xm")
    assert pusher.outputs["pushed_model"].type == standard_artifacts.PushedModel
    assert pusher.exec_properties["gallery_split"] == "eval"
    assert pusher.exec_properties["serving_base_path"] == "/models"
    with pytest.raises(ValueError, match="search_k must be >= 1"):
        TFServingPusher(model=model, examples=examples, serving_dir="/srv", model_name="xm",
                        search_k=0)
