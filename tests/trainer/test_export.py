"""The exported SavedModel: three signatures, Transform inside, same numbers as the towers."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from trainer import export, features, preprocessing, towers
from trainer.config import TrainerConfig


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
    export.export_model(image_tower, text_tower, output, features.CAPTION_KEY, str(tmp_path))
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
