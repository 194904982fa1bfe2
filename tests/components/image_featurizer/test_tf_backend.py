"""The featurizer's ``tf`` backend: the served encoder's backbone, same numbers (skips:
``test_bad_inputs``)."""


import numpy as np
import pytest

from components.image_featurizer import outputs
from components.image_featurizer.config import TF, BackboneConfig
from tests import images
from tests.trainer.tiny_tflite import IMAGE_SIZE, tiny_tflite_path


def _files() -> dict[str, bytes]:
    """Five good images (gray, CMYK, larger than the input) among the bad ones."""
    square = (IMAGE_SIZE, IMAGE_SIZE)
    return {
        "a_rgb.png": images.encode(images.photo(0, square), "PNG"),
        "b_photo.jpg": images.encode(images.photo(1, square), "JPEG", quality=90),
        "c_gray.png": images.encode(images.photo(2, square).convert("L"), "PNG"),
        "d_cmyk.jpg": images.encode(images.photo(3, square).convert("CMYK"), "JPEG", quality=95),
        "e_large.png": images.encode(images.photo(4, (40, 24)), "PNG"),
        **images.bad_files(),
    }


@pytest.fixture(scope="module")
def featurized(tmp_path_factory):
    import apache_beam as beam

    from components.image_featurizer.beam_pipeline import Limits, build_featurizer_pipeline

    folder = tmp_path_factory.mktemp("images")
    for name, data in _files().items():
        (folder / name).write_bytes(data)
    out = tmp_path_factory.mktemp("out")
    backbone = BackboneConfig(kind=TF, model_path=tiny_tflite_path(),
                              image_size=(IMAGE_SIZE, IMAGE_SIZE))
    with beam.Pipeline() as pipeline:
        build_featurizer_pipeline(pipeline, str(folder), str(out), "tiny", backbone,
                                  Limits(max_pixels=1_000_000, batch_size=2))
    return outputs.read_outputs(str(out), "tiny")


def test_conversions_are_reported_and_bad_files_skipped(featurized):
    _, _, report = featurized
    assert report["num_featurized"] == 5 and report["num_skipped"] == len(images.bad_files())
    converted = {entry["file"]: entry["from_mode"] for entry in report["converted"]}
    assert converted["c_gray.png"] == "L" and converted["d_cmyk.jpg"] == "CMYK"
    assert report["num_resized"] == 1


def test_features_are_the_served_backbone_s_within_1e_4(featurized):
    import tensorflow as tf

    from trainer.model.image_backbone import ImageBackbone

    names, matrix, _ = featurized
    files = _files()
    served = ImageBackbone(tiny_tflite_path())(tf.constant([files[name] for name in names]))
    assert names == ["a_rgb.png", "b_photo.jpg", "c_gray.png", "d_cmyk.jpg", "e_large.png"]
    assert np.abs(matrix - served.numpy()).max() <= 1e-4
    assert np.abs(matrix).max() > 0.01  # features, not zeros


def test_tf_backend_rejects_a_tensor_name():
    with pytest.raises(ValueError, match="kind='tf' always reads"):
        BackboneConfig(kind=TF, model_path="m.tflite", output="MobilenetV2/Logits/AvgPool")
