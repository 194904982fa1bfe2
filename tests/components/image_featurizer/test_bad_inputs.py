"""Bad image files through the featurizer, both backends: each a counted skip with its reason.

The files are ``tests.images.bad_files()`` and a JPEG that only decoding finds corrupt (the rows
of the bad-input matrix in docs/serving.md) beside two good photos and a CMYK JPEG, which is
converted, not skipped.
"""

import numpy as np
import pytest

from components.image_featurizer import outputs
from components.image_featurizer.config import TF, TFLITE, BackboneConfig
from tests import images
from tests.trainer.tiny_tflite import FEATURE_DIM, IMAGE_SIZE, tiny_tflite_path

# Both decoders name these reasons (PIL for tflite, the served graph's checks for tf).
EXPECTED_REASONS = {
    "empty.jpg": "not_an_image",
    "truncated.jpg": "corrupt",
    "truncated.png": "corrupt",
    "text.jpg": "not_an_image",
    "huge.png": "too_large",
    "huge.jpg": "too_large",
    "corrupt.jpg": "corrupt",
}


@pytest.fixture(scope="module", params=[TFLITE, TF])
def featurized(request, tmp_path_factory):
    import apache_beam as beam

    from components.image_featurizer.beam_pipeline import Limits, build_featurizer_pipeline

    folder = tmp_path_factory.mktemp(f"images_{request.param}")
    files = {**images.bad_files(), "corrupt.jpg": images.corrupt_jpeg(), "good.jpg": images.jpeg(1),
             "good.png": images.encode(images.photo(2), "PNG"), "cmyk.jpg": images.cmyk_jpeg(3)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    out = tmp_path_factory.mktemp("out")
    backbone = BackboneConfig(kind=request.param, model_path=tiny_tflite_path(),
                              image_size=(IMAGE_SIZE, IMAGE_SIZE))
    with beam.Pipeline() as pipeline:
        build_featurizer_pipeline(pipeline, str(folder), str(out), "tiny", backbone,
                                  Limits(batch_size=2))
    return request.param, outputs.read_outputs(str(out), "tiny")


def test_every_bad_file_is_one_counted_skip_with_its_reason(featurized):
    _, (_, _, report) = featurized
    reasons = {entry["file"]: entry["reason"] for entry in report["skipped"]}
    assert reasons == EXPECTED_REASONS
    assert report["num_skipped"] == 7 and report["num_featurized"] == 3
    assert report["skipped_by_reason"] == {"not_an_image": 2, "corrupt": 3, "too_large": 2}
    details = {entry["file"]: entry["detail"] for entry in report["skipped"]}
    # PIL and the graph both report the declared pixel count.
    assert str(images.HUGE_SIDE ** 2) in details["huge.png"]
    assert str(images.JPEG_MAX_SIDE ** 2) in details["huge.jpg"]


def test_good_files_and_the_cmyk_jpeg_are_featurized(featurized):
    _, (names, matrix, report) = featurized
    assert names == ["cmyk.jpg", "good.jpg", "good.png"]
    assert matrix.shape == (3, FEATURE_DIM) and np.isfinite(matrix).all()
    converted = {entry["file"]: entry["from_mode"] for entry in report["converted"]}
    assert converted["cmyk.jpg"] == "CMYK"
