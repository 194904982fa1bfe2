"""``EmbeddingClient.embed_images``: encoded photos over REST (b64) and gRPC (DT_STRING)."""

import base64

import numpy as np
import pytest
import tensorflow as tf

from serving.client import EmbeddingClient, GrpcBackend, LocalBackend, RestBackend
from serving.retry import RetryPolicy, ServingError
from tests.serving import images
from tests.serving.fake_servers import Script, start_grpc, start_rest
from tests.trainer.tiny_tflite import FEATURE_DIM

FAST_RETRY = RetryPolicy(max_attempts=2, initial_backoff_s=0.01, max_backoff_s=0.02)


@pytest.fixture(scope="module")
def local(bytes_model_dir):
    return LocalBackend(str(bytes_model_dir))


@pytest.fixture(params=["rest", "grpc"])
def remote(request, local):
    script = Script(local, FEATURE_DIM)
    if request.param == "rest":
        server, url = start_rest(script)
        yield request.param, script, RestBackend(url, "toy", timeout_s=5.0, retry=FAST_RETRY)
        server.shutdown()
    else:
        server, target = start_grpc(script)
        backend = GrpcBackend(target, "toy", timeout_s=5.0, retry=FAST_RETRY)
        yield request.param, script, backend
        backend.close()
        server.stop(0)


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


@pytest.mark.parametrize("bad, message", [
    (images.truncated_jpeg(), "(?i)jpeg"),
    (images.HUGE_PNG, r"image 1 is too large: \[60000 60000\]"),
])
def test_what_only_decoding_finds_is_a_serving_error_and_the_server_goes_on(remote, bad,
                                                                            message):
    _, _, backend = remote
    client = EmbeddingClient(backend)
    with pytest.raises(ServingError, match=message):
        client.embed_images([images.jpeg(), bad])
    assert client.embed_images([images.cmyk_jpeg()]).shape == (1, 8)
