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


def _served(serving_dir) -> list[tuple[str, str]]:
    text = (serving_dir / "models.config").read_text()
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    return [(c.name, c.base_path) for c in parsed.model_config_list.config]


def test_second_model_name_keeps_the_first_and_a_hand_added_model(encoders, tmp_path):
    first, second, gallery = encoders
    serving = tmp_path / "serving"
    push_model(first, gallery, PushConfig(str(serving), "xmodal"), now=10)
    text = (serving / "models.config").read_text().rstrip()
    assert text.endswith("}")  # a person adds a third entry inside model_config_list { }
    (serving / "models.config").write_text(
        text[:-1] + '  config { name: "third" base_path: "/other/third" '
        'model_platform: "tensorflow" }\n}\n')
    result = push_model(second, gallery, PushConfig(str(serving), "xmodal2"), now=20)
    assert result.pushed
    assert _served(serving) == [
        ("xmodal", "/models/xmodal"), ("xmodal_search", "/models/xmodal_search"),
        ("third", "/other/third"),
        ("xmodal2", "/models/xmodal2"), ("xmodal2_search", "/models/xmodal2_search")]


def test_unparseable_models_config_refuses_the_push(encoders, tmp_path):
    first, _, gallery = encoders
    (tmp_path / "models.config").write_text("model_config_list { oops")
    with pytest.raises(ValueError, match=r"models\.config: not a valid TF Serving"):
        push_model(first, gallery, PushConfig(str(tmp_path), "xmodal"), now=10)
    assert sorted(os.listdir(tmp_path)) == ["models.config"]
    assert (tmp_path / "models.config").read_text() == "model_config_list { oops"


def test_features_mode_encoder_is_pushed_with_an_image_search_model(encoders, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    from serving.search_model import SEARCH_IMAGES_SIGNATURE, WARMUP_FILE
    from tests.serving.features_encoder import FeaturesEncoder

    _, _, gallery = encoders
    model = FeaturesEncoder(D, 8, text_dim=3).save(tmp_path / "linear")
    result = push_model(model, gallery, PushConfig(str(tmp_path / "serving"), "xm", search_k=1),
                        now=5)
    assert result.pushed and result.num_gallery_images == 3
    search = tf.saved_model.load(result.search_destination)
    assert set(search.signatures) == {SEARCH_IMAGES_SIGNATURE}  # no text query to embed
    out = search.signatures[SEARCH_IMAGES_SIGNATURE](image_features=tf.constant([[0, 2.0, 0, 0]]))
    assert out["ids"].numpy()[0, 0] == b"b.jpg"
    index = load_index(os.path.join(result.search_destination, INDEX_SUBDIR))
    assert index.caption_ids.tolist() == []
    # TF Serving replays the warm-up request on load: it must name a signature the model has.
    (record,) = tf.data.TFRecordDataset(os.path.join(result.search_destination, WARMUP_FILE))
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    assert log.predict_log.request.model_spec.signature_name == SEARCH_IMAGES_SIGNATURE


def _leftovers_of_a_killed_push(serving) -> list:
    """What a push killed midway leaves: build and staging folders, a search version alone."""
    paths = [serving / ".build-k1l2" / "search" / "variables",
             serving / "xm" / ".tmp-1500-abc" / "variables",
             serving / "xm_search" / ".tmp-1500-def",
             serving / "xm_search" / "1500" / "variables"]
    for path in paths:
        path.mkdir(parents=True)
    (paths[0] / "variables.index").write_bytes(b"partial")
    return paths


def test_a_push_removes_what_a_killed_push_left(encoders, tmp_path):
    first, second, gallery = encoders
    serving = tmp_path / "serving"
    config = PushConfig(str(serving), "xm", search_k=2)
    assert push_model(first, gallery, config, now=1000).pushed
    _leftovers_of_a_killed_push(serving)
    (serving / "other_model" / ".tmp-9-x").mkdir(parents=True)  # not this push's model

    assert push_model(second, gallery, config, now=1200).version == 1200
    assert sorted(os.listdir(serving)) == ["models.config", "other_model", "xm", "xm_search"]
    assert sorted(os.listdir(serving / "xm")) == ["1000", "1200"]
    assert sorted(os.listdir(serving / "xm_search")) == ["1000", "1200"]
    assert os.listdir(serving / "other_model") == [".tmp-9-x"]


def test_an_unblessed_run_removes_them_too_and_a_file_is_no_serving_dir(tmp_path):
    from components.tf_serving_pusher.push import remove_leftovers

    serving = tmp_path / "serving"
    (serving / "xm" / "1000").mkdir(parents=True)
    (serving / "xm_search" / "1000").mkdir(parents=True)
    leftovers = _leftovers_of_a_killed_push(serving)
    config = PushConfig(str(serving), "xm")
    assert remove_leftovers(config) == [str(serving / ".build-k1l2"),
                                        str(serving / "xm" / ".tmp-1500-abc"),
                                        str(serving / "xm_search" / ".tmp-1500-def"),
                                        str(serving / "xm_search" / "1500")]
    assert not any(path.exists() for path in leftovers)
    assert sorted(os.listdir(serving / "xm_search")) == ["1000"]
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    assert remove_leftovers(PushConfig(str(a_file), "xm")) == []
    with pytest.raises(NotADirectoryError, match=f"serving_dir {a_file} exists and is not a"):
        push_model(str(tmp_path), "unused", PushConfig(str(a_file), "xm"))
