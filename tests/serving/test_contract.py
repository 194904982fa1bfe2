import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from serving.contract import (
    ContractError,
    EncoderSpec,
    check_encoder_contract,
    text_input_of,
)
from serving.toy_model import ToyEncoder, save_encoder
from tests.serving.conftest import EMBEDDING_DIM, FEATURE_DIM
from tests.serving.features_encoder import FeaturesEncoder
from trainer import features

SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"


def test_toy_encoder_honours_the_contract(toy_model_dir):
    spec = check_encoder_contract(str(toy_model_dir))
    assert (spec.feature_dim, spec.embedding_dim) == (FEATURE_DIM, EMBEDDING_DIM)


def test_every_signature_loads_and_agrees(toy_model_dir):
    model = tf.saved_model.load(str(toy_model_dir))
    captions = tf.constant(["a dog runs", "", "qqq zzz", "a dog runs"])
    text = model.signatures["embed_text"](caption=captions)["text_embedding"].numpy()
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(text[0], text[3])  # deterministic
    assert not np.allclose(text[1], text[2])  # empty and all-OOV differ but both are unit
    features_in = np.eye(2, FEATURE_DIM, dtype=np.float32)
    image = model.signatures["embed_image"](image_features=features_in)["image_embedding"]
    example = tf.train.Example()
    example.features.feature[features.CAPTION_KEY].bytes_list.value.append(b"a dog runs")
    example.features.feature[features.IMAGE_FEATURES_KEY].float_list.value.extend(features_in[1])
    both = model.signatures["serving_default"](examples=tf.constant([example.SerializeToString()]))
    np.testing.assert_allclose(both["text_embedding"][0], text[0], atol=1e-6)
    np.testing.assert_allclose(both["image_embedding"][0], image[1], atol=1e-6)


def test_saved_model_cli_lists_the_signatures(toy_model_dir):
    out = subprocess.run([str(SAVED_MODEL_CLI), "show", "--all", "--dir", str(toy_model_dir)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    for name in ("serving_default", "embed_text", "embed_image"):
        assert f"signature_def['{name}']" in out
    assert "inputs['caption'] tensor_info" in out and "outputs['text_embedding']" in out


class _Unnormalized(ToyEncoder):
    def _text(self, caption):
        return 2.0 * super()._text(caption)


def test_unnormalized_text_embedding_is_rejected(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\ndog\n")
    save_encoder(_Unnormalized(str(vocab), 2, FEATURE_DIM, EMBEDDING_DIM), tmp_path / "m")
    with pytest.raises(ContractError, match="embed_text: rows must be finite unit vectors"):
        check_encoder_contract(str(tmp_path / "m"))


def test_missing_signature_is_rejected(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda caption: {"text_embedding": tf.ones([1, 2])},
                           input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "m"),
                        signatures={"embed_text": module.f.get_concrete_function()})
    with pytest.raises(ContractError, match="missing signature 'serving_default'"):
        check_encoder_contract(str(tmp_path / "m"))


def test_features_mode_encoder_honours_the_contract_it_declares(tmp_path):
    path = FeaturesEncoder(FEATURE_DIM, EMBEDDING_DIM, 5).save(tmp_path / "m")
    spec = check_encoder_contract(path)
    assert spec == EncoderSpec(FEATURE_DIM, EMBEDDING_DIM, "caption_features", 5)


def test_features_mode_serving_default_must_agree_with_embed_text(tmp_path):
    path = FeaturesEncoder(FEATURE_DIM, EMBEDDING_DIM, 5, serve_reversed=True).save(tmp_path / "m")
    with pytest.raises(ContractError, match="serving_default text_embedding differs"):
        check_encoder_contract(path)


def test_embed_text_input_must_be_captions_or_caption_features(tmp_path):
    module = FeaturesEncoder(FEATURE_DIM, EMBEDDING_DIM, 5)
    module.ints = tf.function(lambda tokens: {"text_embedding": tf.ones([1, 2])},
                              input_signature=[tf.TensorSpec([None], tf.int64, name="tokens")])
    tf.saved_model.save(module, str(tmp_path / "m"),
                        signatures={"embed_text": module.ints.get_concrete_function()})
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    with pytest.raises(ContractError, match="must take 'caption' \\(string\\) or "
                                            "'caption_features' \\(float32\\); takes"):
        text_input_of(loaded, "m")
