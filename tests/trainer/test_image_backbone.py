"""The TF image backbone: TFLite weights read by graph position, in-graph decoding, bad bytes."""

import io
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import images
from tests.trainer.tiny_tflite import FEATURE_DIM, IMAGE_SIZE, tiny_tflite_path
from trainer.model import image_backbone, tflite_graph


def _photo(size=(IMAGE_SIZE, IMAGE_SIZE), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    noise = rng.integers(0, 60, (size[1], size[0], 3))
    return Image.fromarray(np.clip(gradient + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def tiny():
    return image_backbone.ImageBackbone(tiny_tflite_path())


def test_dequantize_per_channel_by_hand():
    raw = np.array([[1, 2], [3, 4]], np.uint8)
    got = tflite_graph._dequantize(raw, np.array([0.5, 2.0]), np.array([1.0, 0.0]), axis=0)
    np.testing.assert_array_equal(got, [[0.0, 0.5], [6.0, 8.0]])


def test_reader_takes_strides_activations_and_per_channel_scales_from_the_flatbuffer():
    with open(tiny_tflite_path(), "rb") as handle:
        graph = tflite_graph.read_graph(handle.read(), "tiny.tflite")
    kinds = [op.kind for op in graph.ops]
    assert kinds[0] == tflite_graph.QUANTIZE and kinds[-1] == tflite_graph.AVERAGE_POOL_2D
    first_conv = graph.ops[1]
    assert first_conv.kind == tflite_graph.CONV_2D and first_conv.strides == (2, 2)
    kernel = graph.tensors[first_conv.inputs[1]]
    assert kernel.scale.shape == (6,) and kernel.value.shape == (6, 3, 3, 3)
    assert graph.ops[-1].filter_size == (IMAGE_SIZE // 2, IMAGE_SIZE // 2)


def test_features_track_the_tflite_interpreter_within_a_few_quantization_steps(tiny):
    interpreter = tf.lite.Interpreter(model_path=tiny_tflite_path())
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    encoded = [images.encode(_photo(seed=seed), "PNG") for seed in range(4)]
    expected = []
    for data in encoded:
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[np.newaxis]
        interpreter.set_tensor(source["index"], pixels)
        interpreter.invoke()
        expected.append(interpreter.get_tensor(target["index"])[0])
    got = tiny(tf.constant(encoded)).numpy()
    assert got.shape == (4, FEATURE_DIM) and tiny.feature_dim == FEATURE_DIM
    step = 0.006623  # the pool tensor's scale
    np.testing.assert_allclose(got, np.asarray(expected), atol=4 * step)


def test_jpeg_pixels_are_pil_pixels_and_grayscale_alpha_become_rgb(tiny):
    photo = _photo()
    jpeg = images.encode(photo, "JPEG", quality=90)
    gray = Image.fromarray(np.arange(IMAGE_SIZE * IMAGE_SIZE, dtype=np.uint8).reshape(
        IMAGE_SIZE, IMAGE_SIZE))
    rgba = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, : IMAGE_SIZE // 2, 3] = 255  # left half opaque red, right half transparent
    decoded = tiny.decode(tf.constant(
        [jpeg, images.encode(gray, "PNG"), images.encode(Image.fromarray(rgba), "PNG")])).numpy()
    np.testing.assert_array_equal(decoded[0], np.asarray(Image.open(io.BytesIO(jpeg))))
    np.testing.assert_array_equal(decoded[1], np.repeat(np.asarray(gray)[..., None], 3, -1))
    np.testing.assert_array_equal(decoded[2][0, 0], [200, 0, 0])
    np.testing.assert_array_equal(decoded[2][0, -1], [255, 255, 255])


def test_other_sizes_are_resized_to_the_input_size(tiny):
    big = images.encode(_photo((40, 24)), "PNG")
    decoded = tiny.decode(tf.constant([big])).numpy()
    assert decoded.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert np.array_equal(decoded, np.round(decoded)) and decoded.max() <= 255


@pytest.mark.parametrize("bad, message", [
    (b"", "image 1 is empty"),
    (b"GIF89a not supported here", "image 1 is not a JPEG or PNG"),
    (b"hello, world", "is not a JPEG or PNG"),
    (images.HUGE_PNG, "image 1 is too large"),
    (images.huge_jpeg(), "image 1 is too large"),
    (b"\x89PNG\r\n\x1a\n\x00\x00IEND", "image 1 is a truncated PNG (no IHDR header)"),
    (images.truncated_png(), "image 1 is a truncated PNG (no IEND chunk)"),
    (images.truncated_jpeg(), "image 1 is a truncated JPEG (no end-of-image marker)"),
])
def test_bad_bytes_raise_invalid_argument_naming_the_item(tiny, bad, message):
    good = images.encode(_photo(), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        tiny(tf.constant([good, bad]))


def test_corrupt_scan_data_fails_in_the_decoder(tiny):
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)jpeg"):
        tiny(tf.constant([images.corrupt_jpeg()]))


def test_cmyk_jpeg_decodes_to_pil_s_rgb_pixels(tiny):
    cmyk = images.cmyk_jpeg(3)
    rgb = images.encode(Image.open(io.BytesIO(cmyk)).convert("RGB"), "PNG")
    decoded = tiny.decode(tf.constant([cmyk, rgb])).numpy()
    np.testing.assert_array_equal(decoded[0], decoded[1])
    assert decoded[0].std() > 10  # a photo, not a blank


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFLite model at"):
        image_backbone.ImageBackbone(str(tmp_path / "absent.tflite"))
