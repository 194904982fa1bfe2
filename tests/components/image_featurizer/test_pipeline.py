"""Model handlers and the Beam featurizer pipeline, on tiny hand-checkable models and images."""

import numpy as np
import pytest
from PIL import Image

from components.image_featurizer import outputs
from components.image_featurizer.config import BackboneConfig
from components.image_featurizer.handlers import make_model_handler

SIZE = (4, 4)


@pytest.fixture(scope="module")
def keras_model_path(tmp_path_factory):
    """Input [4, 4, 3] -> 'pool' (per-channel mean) -> 'head' (sum of the three means)."""
    import tf_keras as keras

    inputs = keras.Input((4, 4, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(inputs)
    head = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="head")(pooled)
    path = str(tmp_path_factory.mktemp("keras") / "tiny.h5")
    keras.Model(inputs, head).save(path)
    return path


@pytest.fixture(scope="module")
def saved_model_path(tmp_path_factory):
    """A SavedModel whose signature returns {"peak": per-channel max, "low": per-channel min}."""
    import tensorflow as tf

    class Peak(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32)])
        def serve(self, pixels):
            return {
                "peak": tf.reduce_max(pixels, axis=[1, 2]),
                "low": tf.reduce_min(pixels, axis=[1, 2]),
            }

    module = Peak()
    path = str(tmp_path_factory.mktemp("saved") / "peak")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def _image(red: int, green: int, blue: int) -> np.ndarray:
    return np.tile(np.array([red, green, blue], np.uint8), (4, 4, 1))


def test_keras_handler_reads_a_named_layer_with_input_scaling(keras_model_path):
    config = BackboneConfig(
        kind="keras",
        model_path=keras_model_path,
        output="pool",
        image_size=SIZE,
        input_scale=0.5,
        input_offset=-1.0,
    )
    handler = make_model_handler(config, max_batch_size=2)
    results = list(
        handler.run_inference([_image(10, 20, 30), _image(0, 2, 4)], handler.load_model())
    )
    np.testing.assert_allclose([r.inference for r in results], [[4, 9, 14], [-1, 0, 1]])
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 2}


def test_keras_handler_defaults_to_the_model_output(keras_model_path):
    config = BackboneConfig(kind="keras", model_path=keras_model_path, output="", image_size=SIZE)
    handler = make_model_handler(config)
    (result,) = handler.run_inference([_image(10, 20, 30)], handler.load_model())
    np.testing.assert_allclose(result.inference, [60.0])


def test_saved_model_handler_reads_the_chosen_output(saved_model_path):
    pixels = _image(5, 6, 7)
    pixels[0, 0] = (9, 1, 200)
    config = BackboneConfig(
        kind="saved_model", model_path=saved_model_path, output="low", image_size=SIZE
    )
    handler = make_model_handler(config)
    (result,) = handler.run_inference([pixels], handler.load_model())
    np.testing.assert_allclose(result.inference, [5, 1, 7])


def test_saved_model_handler_names_outputs_when_ambiguous(saved_model_path):
    config = BackboneConfig(
        kind="saved_model", model_path=saved_model_path, output="", image_size=SIZE
    )
    with pytest.raises(ValueError, match=r"outputs \['low', 'peak'\]"):
        make_model_handler(config).load_model()


def test_pipeline_writes_sorted_features_and_a_report(tmp_path, keras_model_path):
    import apache_beam as beam

    from components.image_featurizer.beam_pipeline import Limits, build_featurizer_pipeline

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_image(10, 20, 30)).save(images / "b.png")
    Image.new("L", (4, 4), 50).save(images / "a_gray.png")
    Image.new("RGB", (8, 2), (4, 8, 12)).save(images / "c_wide.png")
    (images / "captions.txt").write_text("not an image\n")
    Image.new("RGB", (5, 5)).save(images / "d_huge.png")
    config = BackboneConfig(
        kind="keras", model_path=keras_model_path, output="pool", image_size=SIZE
    )
    with beam.Pipeline() as pipeline:
        build_featurizer_pipeline(
            pipeline,
            str(images),
            str(tmp_path / "out"),
            "feats",
            config,
            Limits(max_pixels=24, batch_size=2),
        )
    names, matrix, report = outputs.read_outputs(str(tmp_path / "out"), "feats")
    assert names == ["a_gray.png", "b.png", "c_wide.png"]
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(matrix, [[50, 50, 50], [10, 20, 30], [4, 8, 12]])
    assert (report["num_files"], report["num_featurized"], report["num_skipped"]) == (5, 3, 2)
    assert report["skipped_by_reason"] == {"not_an_image": 1, "too_large": 1}
    assert [e["file"] for e in report["skipped"]] == ["captions.txt", "d_huge.png"]
    assert report["converted"] == [
        {"file": "a_gray.png", "from_mode": "L", "resized": False, "original_size": [4, 4]},
        {"file": "c_wide.png", "from_mode": "", "resized": True, "original_size": [8, 2]},
    ]
    assert (report["num_mode_converted"], report["num_resized"], report["feature_dim"]) == (1, 1, 3)


def test_pipeline_fails_clearly_when_nothing_is_featurized(tmp_path, keras_model_path):
    import apache_beam as beam

    from components.image_featurizer.beam_pipeline import build_featurizer_pipeline

    images = tmp_path / "images"
    images.mkdir()
    (images / "readme.md").write_text("# no images here\n")
    config = BackboneConfig(kind="keras", model_path=keras_model_path, image_size=SIZE)
    with (
        pytest.raises(ValueError, match="no image could be featurized") as caught,
        beam.Pipeline() as pipeline,
    ):
        build_featurizer_pipeline(pipeline, str(images), str(tmp_path / "out"), "f", config)
    assert "not_an_image" in str(caught.value)


def test_keras_application_loads_local_weights_without_download(tmp_path):
    import tf_keras as keras

    reference = keras.applications.MobileNetV2(
        include_top=False, weights=None, pooling="avg", input_shape=(32, 32, 3)
    )
    weights = str(tmp_path / "mnv2_notop.h5")
    reference.save_weights(weights)
    config = BackboneConfig(
        kind="keras",
        model_path=weights,
        application="MobileNetV2",
        image_size=(32, 32),
        input_scale=1 / 127.5,
        input_offset=-1.0,
    )
    pixels = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    handler = make_model_handler(config)
    results = handler.run_inference(list(pixels), handler.load_model())
    expected = reference(pixels.astype(np.float32) / 127.5 - 1.0, training=False).numpy()
    assert expected.shape == (2, 1280)
    np.testing.assert_allclose([r.inference for r in results], expected, rtol=1e-5, atol=1e-5)


def test_read_outputs_strips_a_bom_and_accepts_crlf_in_the_names_file(tmp_path):
    paths = outputs.output_paths(str(tmp_path), "feats")
    np.save(paths["features"], np.eye(2, dtype=np.float32))
    with open(paths["names"], "wb") as f:  # as re-saved by a Windows editor
        f.write(b"\xef\xbb\xbfa.jpg\r\nb.jpg\r\n")
    with open(paths["report"], "w", encoding="utf-8") as f:
        f.write("{}")
    names, matrix, _ = outputs.read_outputs(str(tmp_path), "feats")
    assert names == ["a.jpg", "b.jpg"] and matrix.shape == (2, 2)
