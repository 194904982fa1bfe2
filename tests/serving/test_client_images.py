"""``EmbeddingClient.embed_images``: encoded photos over REST (b64) and gRPC (DT_STRING)."""

import base64
import io
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from serving.client import EmbeddingClient, LocalBackend
from serving.retry import RetryPolicy, ServingError
from tests import images
from tests.serving.fake_servers import serving
from tests.trainer.tiny_tflite import FEATURE_DIM

FAST_RETRY = RetryPolicy(max_attempts=2, initial_backoff_s=0.01, max_backoff_s=0.02)


@pytest.fixture(scope="module")
def local(bytes_model_dir):
    return LocalBackend(str(bytes_model_dir))


@pytest.fixture(params=["rest", "grpc"])
def remote(request, local):
    with serving(request.param, local, FEATURE_DIM, 5.0, FAST_RETRY) as (script, backend):
        yield request.param, script, backend


def test_request_bodies_are_b64_over_rest_and_dt_string_over_grpc(remote, local, tmp_path):
    kind, script, backend = remote
    photo, png = images.jpeg(1), images.encode(images.photo(2), "PNG")
    (tmp_path / "photo.jpg").write_bytes(photo)
    got = EmbeddingClient(backend).embed_images([tmp_path / "photo.jpg", png])
    want = EmbeddingClient(local).embed_images([photo, png])
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(got[0], got[1])
    (request,) = script.requests
    if kind == "rest":
        assert request[2] == {"signature_name": "embed_image_bytes", "inputs": {"image_bytes": [
            {"b64": base64.b64encode(photo).decode()}, {"b64": base64.b64encode(png).decode()}]}}
    else:
        assert request.model_spec.signature_name == "embed_image_bytes"
        tensor = request.inputs["image_bytes"]
        assert tensor.dtype == tf.string.as_datatype_enum
        assert [d.size for d in tensor.tensor_shape.dim] == [2]
        assert list(tensor.string_val) == [photo, png]


def test_images_are_batched(remote, local):
    _, script, backend = remote
    photos = [images.jpeg(seed) for seed in range(5)]
    got = EmbeddingClient(backend, batch_size=2).embed_images(photos)
    np.testing.assert_allclose(got, EmbeddingClient(local).embed_images(photos), atol=1e-6)
    assert len(script.requests) == 3


@pytest.mark.parametrize("items, message", [
    ([], "images is empty"),
    (b"\xff\xd8\xff", "got a single item"),
    ([images.jpeg(), b""], r"images\[1\]: empty \(0 bytes\)"),
    ([b"GIF89a...."], r"images\[0\]: not a JPEG or PNG image \(first bytes b'GIF89a"),
    ([b"this is not an image"], r"images\[0\]: not a JPEG or PNG"),
    ([images.jpeg(), b"\xff\xd8\xff" + b"\x00" * 9000], r"images\[1\]: 9003 bytes is over the "
                                                        "limit of 8000 bytes"),
    ([images.jpeg(), 3], r"images\[1\] must be a file path or bytes, got int"),
    ([images.truncated_jpeg()], r"images\[0\]: truncated JPEG \(no end-of-image marker\)"),
    ([images.truncated_png()], r"images\[0\]: truncated PNG \(no IEND chunk\)"),
    ([images.HUGE_PNG], r"images\[0\]: too large: 100000x100000 \(height x width\) = "
                        r"10000000000 pixels > max 89478485"),
    ([images.huge_jpeg()], r"images\[0\]: too large: 65500x65500"),
    ([b"\xff\xd8\xff\xe0 header cut \xff\xd9"], r"images\[0\]: unreadable JPEG header"),
])
def test_bad_items_fail_before_any_request(remote, items, message):
    _, script, backend = remote
    client = EmbeddingClient(backend, max_image_bytes=8000)
    with pytest.raises(ValueError, match=message):
        client.embed_images(items)
    assert script.requests == []


def test_missing_and_empty_files_are_named_by_index_and_path(remote, tmp_path):
    _, script, backend = remote
    (tmp_path / "empty.jpg").write_bytes(b"")
    client = EmbeddingClient(backend)
    with pytest.raises(ValueError, match=r"images\[1\] \(.*absent.jpg\): cannot read: No such"):
        client.embed_images([images.jpeg(), tmp_path / "absent.jpg"])
    with pytest.raises(ValueError, match=r"images\[0\] \(.*empty.jpg\): empty"):
        client.embed_images([str(tmp_path / "empty.jpg")])
    assert script.requests == []


def test_the_bad_file_matrix_is_refused_before_sending(remote):
    _, script, backend = remote
    client = EmbeddingClient(backend)
    for data in images.bad_files().values():
        with pytest.raises(ValueError, match=r"images\[1\]: "):
            client.embed_images([images.jpeg(), data])
    assert script.requests == []


def test_what_only_decoding_finds_names_the_request_s_items_and_the_server_goes_on(remote):
    _, script, backend = remote
    client = EmbeddingClient(backend, batch_size=2)
    with pytest.raises(ServingError, match=r"images\[2:4\] \(one request\): .*(?i:jpeg)"):
        client.embed_images([images.jpeg(0), images.jpeg(1), images.jpeg(2),
                             images.corrupt_jpeg()])
    assert len(script.requests) == 2
    assert client.embed_images([images.jpeg(0)]).shape == (1, 8)


def test_a_cmyk_jpeg_embeds_as_its_rgb_conversion(remote, local):
    _, _, backend = remote
    cmyk = images.cmyk_jpeg(5)
    rgb_png = images.encode(Image.open(io.BytesIO(cmyk)).convert("RGB"), "PNG")
    got = EmbeddingClient(backend).embed_images([cmyk])
    np.testing.assert_allclose(got, EmbeddingClient(local).embed_images([rgb_png]), atol=1e-5)


def test_a_device_or_a_huge_file_is_refused_by_path_without_reading_it(local, tmp_path):
    big = tmp_path / "video.jpg"
    with open(big, "wb") as handle:  # sparse: 2 GiB long, nothing written
        handle.truncate(2 << 30)
    client = EmbeddingClient(local)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"^images\[1\] \(/dev/zero\): not a regular file "
                                             r"\(a character device\)"):
            client.embed_images([images.jpeg(), "/dev/zero"])
        with pytest.raises(ValueError, match=rf"^images\[0\] \(.*video.jpg\): {2 << 30} bytes is "
                                             r"over the limit of 4194304 bytes"):
            client.embed_images([big])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
