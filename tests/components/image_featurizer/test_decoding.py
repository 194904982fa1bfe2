"""Decode policy, fingerprint and backbone config of the image featurizer (no TensorFlow)."""

import os

import numpy as np
import pytest
from PIL import Image

from components.image_featurizer import decoding
from components.image_featurizer.config import BackboneConfig
from components.image_featurizer.sources import images_fingerprint, list_image_files
from tests import images

SIZE = (4, 6)  # (height, width)


def test_rgb_at_target_size_is_passed_through_exactly():
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    decoded = decoding.decode_image(images.encode(Image.fromarray(pixels), "PNG"), "a.png", SIZE)
    np.testing.assert_array_equal(decoded.pixels, pixels)
    assert decoded.converted_from == ""
    assert decoded.original_size == (6, 4)


@pytest.mark.parametrize(
    ("mode", "value", "expected_rgb"),
    [
        ("L", 77, (77, 77, 77)),
        ("CMYK", (255, 0, 0, 0), (0, 255, 255)),
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
        ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
        ("RGBA", (10, 20, 30, 0), (255, 255, 255)),  # transparent -> white background
        ("RGBA", (0, 0, 0, 51), (204, 204, 204)),  # 255 * (1 - 51/255)
        ("LA", (0, 255), (0, 0, 0)),
        ("I;16", 257 * 10, (10, 10, 10)),
        ("I;16", 65535, (255, 255, 255)),
    ],
)
def test_modes_are_converted_to_rgb(mode, value, expected_rgb):
    image = Image.new(mode, (6, 4), value)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    decoded = decoding.decode_image(images.encode(image, fmt), "x", SIZE)
    assert decoded.pixels.shape == (4, 6, 3)
    assert decoded.pixels.dtype == np.uint8
    np.testing.assert_array_equal(decoded.pixels[0, 0], expected_rgb)
    assert decoded.converted_from == image.mode


def test_palette_transparency_is_composited_over_white():
    image = Image.new("P", (6, 4), 0)
    image.putpalette([200, 0, 0] + [0, 0, 200] * 255)
    image.info["transparency"] = 0
    decoded = decoding.decode_image(images.encode(image, "PNG"), "p.png", SIZE)
    np.testing.assert_array_equal(decoded.pixels[0, 0], (255, 255, 255))


def test_other_sizes_are_resized_without_crop():
    image = Image.new("RGB", (60, 10), (30, 60, 90))
    decoded = decoding.decode_image(images.encode(image, "PNG"), "wide.png", SIZE)
    assert decoded.pixels.shape == (4, 6, 3)
    np.testing.assert_array_equal(decoded.pixels, np.full((4, 6, 3), (30, 60, 90)))
    assert decoded.original_size == (60, 10)


def test_non_image_is_skipped_as_not_an_image():
    with pytest.raises(decoding.ImageSkipped) as caught:
        decoding.decode_image(b"caption file, not an image\n", "notes.txt", SIZE)
    assert (caught.value.name, caught.value.reason) == ("notes.txt", decoding.NOT_AN_IMAGE)
    assert "notes.txt" in str(caught.value)


def test_truncated_jpeg_is_skipped_as_corrupt():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = images.encode(Image.fromarray(noise), "JPEG")
    with pytest.raises(decoding.ImageSkipped) as caught:
        decoding.decode_image(data[: len(data) // 2], "cut.jpg", SIZE)
    assert caught.value.reason == decoding.CORRUPT


def test_broken_jpeg_header_is_skipped_as_corrupt():
    with pytest.raises(decoding.ImageSkipped) as caught:
        decoding.decode_image(b"\xff\xd8\xff\xe0 not really a jpeg", "head.jpg", SIZE)
    assert caught.value.reason == decoding.CORRUPT
    assert "Truncated File Read" in caught.value.detail


def test_image_over_max_pixels_is_skipped_before_decoding():
    data = images.encode(Image.new("RGB", (11, 10)), "PNG")
    with pytest.raises(decoding.ImageSkipped) as caught:
        decoding.decode_image(data, "big.png", SIZE, max_pixels=109)
    assert caught.value.reason == decoding.TOO_LARGE
    assert "11x10 = 110 pixels > max 109" in caught.value.detail
    assert decoding.decode_image(data, "big.png", SIZE, max_pixels=110).pixels.shape == (4, 6, 3)


def test_fingerprint_changes_with_names_sizes_and_mtimes(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"1234")
    first = images_fingerprint(str(tmp_path))
    assert first == images_fingerprint(str(tmp_path))
    assert first.startswith("sha256:")
    (tmp_path / "b.jpg").write_bytes(b"5")
    second = images_fingerprint(str(tmp_path))
    os.utime(tmp_path / "b.jpg", (1_000_000, 1_000_000))
    third = images_fingerprint(str(tmp_path))
    assert len({first, second, third}) == 3
    assert [os.path.basename(m.path) for m in list_image_files(str(tmp_path))] == ["a.jpg", "b.jpg"]


def test_missing_or_empty_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        images_fingerprint(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="holds no file"):
        list_image_files(str(tmp_path))


def test_backbone_config_round_trips_and_rejects_bad_values():
    config = BackboneConfig(kind="keras", model_path="/m.h5", image_size=(8, 9), input_scale=0.5)
    assert BackboneConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        BackboneConfig.from_dict({"kind": "tflite", "model_path": "m", "colour": 1})
    with pytest.raises(ValueError, match="kind='onnx'"):
        BackboneConfig(kind="onnx", model_path="m")
    with pytest.raises(ValueError, match="image_size"):
        BackboneConfig(kind="tflite", model_path="m", image_size=(0, 224))
    with pytest.raises(ValueError, match="application"):
        BackboneConfig(kind="tflite", model_path="m", application="MobileNetV2")
