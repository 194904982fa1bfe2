"""``embed_image_bytes`` loaded in-process: every bad input is an INVALID_ARGUMENT naming its
item of the batch, and the model goes on serving; a CMYK JPEG embeds as its RGB conversion."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from serving.tf_errors import error_detail
from tests import images
from trainer import features

MESSAGES = {
    "empty.jpg": "image 1 is empty (0 bytes)",
    "truncated.jpg": "image 1 is a truncated JPEG (no end-of-image marker)",
    "truncated.png": "image 1 is a truncated PNG (no IEND chunk)",
    "text.jpg": "image 1 is not a JPEG or PNG image (first bytes ",
    "huge.png": f"image 1 is too large: [{images.HUGE_SIDE} {images.HUGE_SIDE}]",
    "huge.jpg": f"image 1 is too large: [{images.JPEG_MAX_SIDE} {images.JPEG_MAX_SIDE}]",
}


@pytest.fixture(scope="module")
def model(bytes_model_dir):
    return tf.saved_model.load(str(bytes_model_dir))


def _embed(model, blobs: list[bytes]) -> np.ndarray:
    signature = model.signatures[features.EMBED_IMAGE_BYTES_SIGNATURE]
    return signature(**{features.IMAGE_BYTES_INPUT: tf.constant(blobs)})[
        features.IMAGE_EMBEDDING_OUTPUT].numpy()


def test_the_matrix_covers_every_bad_file():
    assert sorted(MESSAGES) == sorted(images.bad_files())


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_bad_input_is_invalid_argument_naming_the_item(model, name):
    good = images.jpeg(0)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        _embed(model, [good, images.bad_files()[name]])
    assert error_detail(caught.value.message).startswith(MESSAGES[name])
    after = _embed(model, [good])
    assert after.shape == (1, 8)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)


def test_corrupt_data_past_a_valid_header_fails_in_the_decoder_and_the_model_goes_on(model):
    with pytest.raises(tf.errors.InvalidArgumentError, match="Invalid JPEG data"):
        _embed(model, [images.jpeg(0), images.corrupt_jpeg()])
    assert _embed(model, [images.jpeg(0)]).shape == (1, 8)


def test_cmyk_jpeg_embeds_as_its_rgb_conversion(model):
    # TensorFlow's libjpeg converts Adobe CMYK to RGB with PIL's formula: the same pixels.
    cmyk = images.cmyk_jpeg(3)
    rgb_png = images.encode(Image.open(io.BytesIO(cmyk)).convert("RGB"), "PNG")
    from_cmyk, from_rgb = _embed(model, [cmyk, rgb_png])
    np.testing.assert_allclose(from_cmyk, from_rgb, atol=1e-5)
    assert not np.allclose(from_cmyk, _embed(model, [images.jpeg(3)])[0], atol=1e-3)
