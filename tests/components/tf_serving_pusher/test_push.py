"""push_model (no TFX): layout, atomic versions, no re-push of identical models, models.config."""

import os

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.tf_serving_pusher.push import PushConfig, push_model
from serving.contract import ContractError
from serving.gallery import load_index
from serving.search_model import INDEX_SUBDIR
from serving.toy_model import write_toy_encoder
from tests.serving.raw_examples import write_examples

D = 4


EVAL_ROWS = [("a.jpg", "a.jpg#1", "a dog on the beach", [1.0, 0, 0, 0]),
             ("a.jpg", "a.jpg#0", "a dog runs", [1.0, 0, 0, 0]),
             ("b.jpg", "b.jpg#0", "two girls in snow", [0, 2.0, 0, 0]),
             ("c.jpg", "c.jpg#0", "a red ball", [0, 0, 3.0, 0])]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    write_examples(root / "eval" / "data.gz", EVAL_ROWS)
    return (str(write_toy_encoder(root / "m1", D, 8, seed=1)),
            str(write_toy_encoder(root / "m2", D, 8, seed=2)), str(root / "eval" / "*"))


def test_push_layout_versions_and_skip_identical(encoders, tmp_path):
    first, second, gallery = encoders
    config = PushConfig(str(tmp_path / "serving"), "xm", search_k=2)
    result = push_model(first, gallery, config, now=1000)
    assert result.pushed and result.version == 1000 and result.num_gallery_images == 3
    assert result.destination == str(tmp_path / "serving" / "xm" / "1000")
    assert result.search_destination == str(tmp_path / "serving" / "xm_search" / "1000")
    assert sorted(os.listdir(tmp_path / "serving")) == ["models.config", "xm", "xm_search"]
    index = load_index(os.path.join(result.search_destination, INDEX_SUBDIR))
    assert index.image_ids.tolist() == ["a.jpg", "b.jpg", "c.jpg"]
    assert index.image_captions.tolist()[0] == "a dog runs"  # smallest caption id
    assert (index.model_name, index.model_version) == ("xm", 1000)

    again = push_model(first, gallery, config, now=2000)
    assert not again.pushed and again.version == 1000
    assert os.listdir(tmp_path / "serving" / "xm") == ["1000"]

    newer = push_model(second, gallery, config, now=500)  # clock went back: still increases
    assert newer.pushed and newer.version == 1001
    assert sorted(os.listdir(tmp_path / "serving" / "xm_search")) == ["1000", "1001"]
    text = (tmp_path / "serving" / "models.config").read_text()
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    assert [(c.name, c.base_path) for c in parsed.model_config_list.config] == [
        ("xm", "/models/xm"), ("xm_search", "/models/xm_search")]
    assert not [n for n in os.listdir(tmp_path / "serving") if n.startswith(".")]


def test_search_model_finds_the_pushed_gallery(encoders, tmp_path):
    first, _, gallery = encoders
    result = push_model(first, gallery, PushConfig(str(tmp_path), "xm", search_k=3), now=7)
    search = tf.saved_model.load(result.search_destination).signatures["search_images"]
    out = search(image_features=tf.constant([[0, 0, 3.0, 0]]))
    assert out["ids"].numpy()[0, 0] == b"c.jpg" and out["captions"].numpy()[0, 0] == b"a red ball"
    np.testing.assert_allclose(out["scores"].numpy()[0, 0], 1.0, atol=1e-5)


def test_contract_breaking_model_is_not_pushed(encoders, tmp_path):
    _, _, gallery = encoders
    module = tf.Module()
    module.f = tf.function(lambda caption: {"text_embedding": tf.ones([1, 2])},
                           input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "bad"),
                        signatures={"embed_text": module.f.get_concrete_function()})
    with pytest.raises(ContractError, match="missing signature"):
        push_model(str(tmp_path / "bad"), gallery, PushConfig(str(tmp_path / "s"), "xm"))
    assert os.listdir(tmp_path / "s") == []


@pytest.mark.parametrize("kwargs, message", [
    ({"model_name": "a/b"}, "plain name"), ({"serving_dir": ""}, "serving_dir must be set"),
    ({"num_versions": 0}, "num_versions must be >= 1"), ({"search_k": 0}, "search_k"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PushConfig(**{"serving_dir": "/s", "model_name": "m", **kwargs})
