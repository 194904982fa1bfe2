"""The exported SavedModel: its signatures, Transform inside, same numbers as the towers."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from tests.trainer.tiny_tflite import tiny_tflite_path
from trainer import features, preprocessing
from trainer.config import TrainerConfig
from trainer.model import export, towers
from trainer.model.image_backbone import ImageBackbone


def _example(row: dict) -> bytes:
    feature = {
        key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[row[key]]))
        for key in (features.IMAGE_ID_KEY, features.CAPTION_ID_KEY, features.CAPTION_KEY)}
    feature[features.IMAGE_FEATURES_KEY] = tf.train.Feature(
        float_list=tf.train.FloatList(value=row[features.IMAGE_FEATURES_KEY]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, transformed):
    tmp_path = tmp_path_factory.mktemp("export")
    output: tft.TFTransformOutput = transformed.tf_transform_output()
    cfg = TrainerConfig(text_tower="mean", embedding_dim=6, word_dim=4)
    image_tower, text_tower = towers.build_towers(cfg, preprocessing.token_vocab_size(output), 8)
    # The tiny backbone's features are 8 wide, as the fixture's image features are.
    export.export_model(image_tower, text_tower, output, features.CAPTION_KEY, str(tmp_path),
                        image_backbone=tiny_tflite_path())
    return tf.saved_model.load(str(tmp_path)), image_tower, text_tower, output


def test_signatures_match_the_towers_on_transformed_inputs(exported, transformed):
    loaded, image_tower, text_tower, output = exported
    rows = transformed.raw_eval[:4]
    captions = tf.constant([row[features.CAPTION_KEY] for row in rows])
    images = tf.constant([row[features.IMAGE_FEATURES_KEY] for row in rows], tf.float32)
    # expected: the Transform layer then the towers, computed here outside the SavedModel
    layer = output.transform_features_layer()
    xf = layer({features.CAPTION_KEY: captions, features.IMAGE_FEATURES_KEY: images})
    want_text = text_tower({key: xf[key] for key in towers.TEXT_TOWER_INPUTS["mean"]}).numpy()
    want_image = image_tower(xf[features.IMAGE_FEATURES_XF]).numpy()

    text = loaded.signatures[features.EMBED_TEXT_SIGNATURE](caption=captions)
    image = loaded.signatures[features.EMBED_IMAGE_SIGNATURE](image_features=images)
    both = loaded.signatures[features.SERVING_DEFAULT_SIGNATURE](
        examples=tf.constant([_example(row) for row in rows]))
    np.testing.assert_allclose(text[features.TEXT_EMBEDDING_OUTPUT], want_text, atol=1e-5)
    np.testing.assert_allclose(image[features.IMAGE_EMBEDDING_OUTPUT], want_image, atol=1e-5)
    np.testing.assert_allclose(both[features.TEXT_EMBEDDING_OUTPUT], want_text, atol=1e-5)
    np.testing.assert_allclose(both[features.IMAGE_EMBEDDING_OUTPUT], want_image, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(want_text, axis=1), 1.0, atol=1e-5)


def test_unknown_words_and_empty_captions_embed_finitely(exported):
    loaded = exported[0]
    out = loaded.signatures[features.EMBED_TEXT_SIGNATURE](
        caption=tf.constant(["zebra xylophone", "", "!!!"]))[features.TEXT_EMBEDDING_OUTPUT]
    assert out.shape == (3, 6) and np.all(np.isfinite(out.numpy()))


def test_towers_are_attributes_for_warm_start(exported):
    loaded, image_tower, _, _ = exported
    for saved, built in zip(loaded.image_tower.variables, image_tower.variables, strict=True):
        np.testing.assert_array_equal(saved.numpy(), built.numpy())


def _png(seed: int) -> bytes:
    import io

    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_embed_image_bytes_is_embed_image_on_the_backbone_features(exported):
    loaded, image_tower, _, _ = exported
    images = tf.constant([_png(seed) for seed in range(3)])
    got = loaded.signatures[features.EMBED_IMAGE_BYTES_SIGNATURE](image_bytes=images)[
        features.IMAGE_EMBEDDING_OUTPUT].numpy()
    backbone_features = ImageBackbone(tiny_tflite_path())(images)
    want = loaded.signatures[features.EMBED_IMAGE_SIGNATURE](image_features=backbone_features)[
        features.IMAGE_EMBEDDING_OUTPUT].numpy()
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_three_original_signatures_keep_their_inputs(exported):
    signatures = exported[0].signatures
    assert set(signatures) == {features.SERVING_DEFAULT_SIGNATURE, features.EMBED_TEXT_SIGNATURE,
                               features.EMBED_IMAGE_SIGNATURE,
                               features.EMBED_IMAGE_BYTES_SIGNATURE}
    inputs = {name: sorted(signatures[name].structured_input_signature[1])
              for name in signatures}
    assert inputs == {"serving_default": ["examples"], "embed_text": ["caption"],
                      "embed_image": ["image_features"], "embed_image_bytes": ["image_bytes"]}


def test_corrupt_image_bytes_are_an_invalid_argument(exported):
    embed = exported[0].signatures[features.EMBED_IMAGE_BYTES_SIGNATURE]
    with pytest.raises(tf.errors.InvalidArgumentError, match="image 0 is not a JPEG or PNG"):
        embed(image_bytes=tf.constant([b"definitely not an image"]))


def test_backbone_of_another_width_exports_no_image_bytes_input(caplog):
    assert export.load_image_backbone(tiny_tflite_path(), image_dim=1280) is None
    assert "no embed_image_bytes signature" in caplog.text
    assert export.load_image_backbone("", image_dim=8) is None
    with pytest.raises(FileNotFoundError, match="absent.tflite"):
        export.load_image_backbone("/nonexistent/absent.tflite", image_dim=8)


def test_the_contract_check_probes_embed_image_bytes(exported, tmp_path):
    from serving import contract

    loaded = exported[0]
    contract._check_image_bytes(loaded, "exported", atol=1e-4)

    class NoError(tf.Module):  # answers corrupt bytes with rows: a contract violation
        def __init__(self):
            super().__init__()
            self.signatures = {
                features.EMBED_IMAGE_BYTES_SIGNATURE: lambda image_bytes: {
                    features.IMAGE_EMBEDDING_OUTPUT: tf.ones([tf.size(image_bytes), 1])}}

    with pytest.raises(contract.ContractError, match="corrupt bytes must raise"):
        contract._check_image_bytes(NoError(), "fake", atol=1e-4)
