import numpy as np
import pytest

from serving.client import EmbeddingClient, LocalBackend, RestBackend
from serving.retry import (
    RetryPolicy,
    ServingError,
    ServingTimeoutError,
    ServingUnavailableError,
)
from tests.serving.conftest import FEATURE_DIM
from tests.serving.fake_servers import serving

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02)
CAPTIONS = ["a dog runs on the beach", "  a cat ", "zzz qqq", "two girls", "A DOG!"]


@pytest.fixture(scope="module")
def local(toy_model_dir):
    return LocalBackend(str(toy_model_dir))


@pytest.fixture(params=["rest", "grpc"])
def remote(request, local):
    with serving(request.param, local, FEATURE_DIM, 2.0, FAST_RETRY) as (script, backend):
        yield request.param, script, backend


def _images(n: int) -> np.ndarray:
    return np.arange(n * FEATURE_DIM, dtype=np.float32).reshape(n, FEATURE_DIM) / 10.0


def test_local_backend_batches_and_gives_unit_rows(local):
    whole = EmbeddingClient(local, batch_size=256).embed_text(CAPTIONS)
    batched = EmbeddingClient(local, batch_size=2).embed_text(CAPTIONS)
    np.testing.assert_allclose(batched, whole, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)
    # The toy tokenizer lower-cases and drops punctuation: "A DOG!" embeds like "a dog".
    np.testing.assert_allclose(whole[4], EmbeddingClient(local).embed_text(["a dog"])[0],
                               atol=1e-6)
    assert EmbeddingClient(local).feature_dim == FEATURE_DIM


def test_remote_embeddings_equal_local_and_batches(remote, local):
    kind, script, backend = remote
    client = EmbeddingClient(backend, batch_size=2)
    np.testing.assert_allclose(client.embed_text(CAPTIONS),
                               EmbeddingClient(local).embed_text(CAPTIONS), atol=1e-6)
    assert client.feature_dim == FEATURE_DIM
    np.testing.assert_allclose(client.embed_image(_images(3)),
                               EmbeddingClient(local).embed_image(_images(3)), atol=1e-6)
    predicts = [r for r in script.requests if kind == "grpc" or r[0] == "POST"]
    assert len(predicts) == 3 + 2  # ceil(5/2) caption batches + ceil(3/2) image batches
    if kind == "rest":
        assert predicts[0][2] == {"signature_name": "embed_text",
                                  "inputs": {"caption": CAPTIONS[:2]}}
    else:
        assert predicts[0].model_spec.signature_name == "embed_text"
        assert list(predicts[0].inputs["caption"].string_val) == [b"a dog runs on the beach",
                                                                    b"  a cat "]


def test_retries_on_unavailable_then_succeeds(remote):
    _, script, backend = remote
    script.failures = 2
    out = EmbeddingClient(backend).embed_text(["a dog"])
    assert out.shape == (1, 8) and len(script.requests) == 3


def test_gives_up_after_max_attempts(remote):
    _, script, backend = remote
    script.failures = 10
    with pytest.raises(ServingUnavailableError, match="after 3 attempts"):
        EmbeddingClient(backend).embed_text(["a dog"])
    assert len(script.requests) == 3


def test_timeout_is_a_clear_error(remote):
    _, script, backend = remote
    script.delay_s = 0.6
    backend.timeout_s = 0.2
    with pytest.raises(ServingTimeoutError, match="no answer in 0.2s"):
        EmbeddingClient(backend).embed_text(["a dog"])
    assert len(script.requests) == 1  # a timeout is not retried


def test_unknown_model_is_not_retried(remote):
    _, script, backend = remote
    backend.model_name = "other"
    with pytest.raises(ServingError, match=r"^captions\[0:1\] \(one request\): .*other"):
        EmbeddingClient(backend).embed_text(["a dog"])
    assert len(script.requests) == 1


@pytest.mark.parametrize("call, message", [
    (lambda c: c.embed_text([]), "captions is empty"),
    (lambda c: c.embed_text("a dog"), "single string"),
    (lambda c: c.embed_text(["ok", 3]), r"captions\[1\] must be str"),
    (lambda c: c.embed_text(None), "captions must be a sequence of strings, got NoneType"),
    (lambda c: c.embed_text(["ok", ""]), r"captions\[1\]: empty or whitespace-only caption"),
    (lambda c: c.embed_text(["  \t"]), r"captions\[0\]: empty or whitespace-only caption"),
    (lambda c: c.embed_text(["ok", "?!"]), r"captions\[1\]: caption '\?!' has no tokens"),
    (lambda c: c.embed_image(np.ones((2, FEATURE_DIM + 1))), "width is 7, the model expects D=6"),
    (lambda c: c.embed_image(np.ones(FEATURE_DIM)), "must be 2-D"),
    (lambda c: c.embed_image(np.ones((0, FEATURE_DIM))), "image_features is empty"),
])
def test_bad_inputs_fail_before_any_predict_request(remote, call, message):
    _, script, backend = remote
    client = EmbeddingClient(backend, feature_dim=FEATURE_DIM)
    with pytest.raises(ValueError, match=message):
        call(client)
    assert script.requests == []


def test_non_finite_feature_is_named_by_row_and_column(local):
    values = np.ones((3, FEATURE_DIM), np.float32)
    values[2, 4] = np.nan
    with pytest.raises(ValueError, match="1 non-finite value.*row 2, column 4: nan"):
        EmbeddingClient(local).embed_image(values)


def test_connection_refused_is_retried_then_unavailable():
    backend = RestBackend("http://127.0.0.1:9", "toy", timeout_s=1.0, retry=FAST_RETRY)
    with pytest.raises(ServingUnavailableError, match="cannot connect"):
        EmbeddingClient(backend, feature_dim=FEATURE_DIM).embed_text(["a dog"])


def test_retry_policy_backoffs_and_validation():
    assert RetryPolicy(4, 0.1, 2.0, 0.3).backoffs() == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
