"""Clients that embed captions and image features with a pushed encoder.

One interface, three backends:

* ``RestBackend``: TF Serving's REST API (``/v1/models/<name>:predict``, ``signature_name``).
* ``GrpcBackend``: TF Serving's gRPC ``PredictionService``.
* ``LocalBackend``: the SavedModel loaded in-process (no server needed).

``EmbeddingClient`` validates inputs before any request (empty caption list, wrong feature width,
non-finite values), splits them into batches and concatenates the answers::

    client = EmbeddingClient(RestBackend("http://localhost:8501", "xmodal"))
    text = client.embed_text(["a dog runs on the beach"])      # [1, d], unit rows
    image = client.embed_image(features)                        # [N, d]
    photos = client.embed_images(["photo.jpg", png_bytes])      # [2, d], ``embed_image_bytes``

``embed_images`` sends encoded JPEG/PNG bytes (REST: ``{"b64": ...}`` values; gRPC: a
``DT_STRING`` tensor) after checking each one (empty, not a JPEG/PNG, over ``max_image_bytes``).
"""

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import wire
from serving.retry import (
    RetryableError,
    RetryPolicy,
    ServingError,
    ServingInvalidInputError,
    ServingNotFoundError,
    ServingTimeoutError,
    call_with_retries,
)
from serving.savedmodel import load_saved_model
from serving.tf_errors import error_detail
from serving.validation import (
    DEFAULT_MAX_IMAGE_BYTES,
    ImageSource,
    validate_captions,
    validate_image_features,
    validate_images,
)
from trainer import features

_CAPTION_INPUT = features.CAPTION_KEY
_IMAGE_INPUT = features.IMAGE_FEATURES_KEY
_IMAGE_BYTES_INPUT = features.IMAGE_BYTES_INPUT
DEFAULT_RETRY = RetryPolicy()
# What TF Serving answers for a bad input and for a model or version it does not serve.
_HTTP_ERRORS = {400: ServingInvalidInputError, 404: ServingNotFoundError}
_GRPC_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT: ServingInvalidInputError,
                grpc.StatusCode.NOT_FOUND: ServingNotFoundError}


class Backend(Protocol):
    """Runs one signature of the served encoder."""

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Runs ``signature_name`` on ``inputs``; returns ``output_names`` → arrays."""

    def input_shape(self, signature_name: str, input_name: str) -> tuple[int | None, ...]:
        """The declared shape of a signature input (None for unknown dimensions)."""


class LocalBackend:
    """The SavedModel loaded in-process with ``tf.saved_model.load``.

    Args:
        saved_model_dir: a SavedModel directory (e.g. ``<serving_dir>/<model>/<version>``).
        loaded: ``load_saved_model(saved_model_dir)`` when the caller has it (one load).

    """

    def __init__(self, saved_model_dir: str, loaded: tf.Module | None = None):
        self.saved_model_dir = str(saved_model_dir)
        self._model = loaded if loaded is not None else load_saved_model(self.saved_model_dir)

    def _signature(self, signature_name: str) -> Any:
        if signature_name not in self._model.signatures:
            raise ServingError(f"{self.saved_model_dir}: no signature {signature_name!r}; has "
                               f"{sorted(self._model.signatures)}")
        return self._model.signatures[signature_name]

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Calls the signature eagerly."""
        tensors = {name: tf.constant(value) for name, value in inputs.items()}
        try:
            outputs = self._signature(signature_name)(**tensors)
        except tf.errors.InvalidArgumentError as err:
            # What TF Serving answers with INVALID_ARGUMENT (e.g. a truncated image).
            raise ServingInvalidInputError(f"{self.saved_model_dir} {signature_name}: "
                                           f"{error_detail(err.message)}") from err
        return {name: outputs[name].numpy() for name in output_names}

    def input_shape(self, signature_name: str, input_name: str) -> tuple[int | None, ...]:
        """Reads the shape from the signature's input spec."""
        spec = self._signature(signature_name).structured_input_signature[1][input_name]
        return tuple(spec.shape.as_list())


class RestBackend:
    """TF Serving's REST API.

    Args:
        base_url: server root, e.g. ``http://localhost:8501``.
        model_name: served model name.
        version: a pinned version, or None for the latest.
        timeout_s: deadline of one HTTP request.
        retry: retries on HTTP 503 / refused connections.

    """

    def __init__(self, base_url: str, model_name: str, version: int | None = None,
                 timeout_s: float = 10.0, retry: RetryPolicy = DEFAULT_RETRY):
        self.base_url, self.model_name, self.version = base_url, model_name, version
        self.timeout_s, self.retry = timeout_s, retry

    def _request(self, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One HTTP exchange (POST with JSON ``body``, or GET when None) with retries."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data,
                                         headers={"Content-Type": "application/json"})

        def attempt() -> dict[str, Any]:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                    return json.loads(answer.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace")
                if err.code == 503:
                    raise RetryableError(f"HTTP 503: {detail}") from err
                kind = _HTTP_ERRORS.get(err.code, ServingError)
                raise kind(f"REST {url}: HTTP {err.code}: {detail}") from err
            except TimeoutError as err:
                raise ServingTimeoutError(f"REST {url}: no answer in {self.timeout_s}s") from err
            except urllib.error.URLError as err:
                if isinstance(err.reason, TimeoutError | socket.timeout):
                    raise ServingTimeoutError(
                        f"REST {url}: no answer in {self.timeout_s}s") from err
                raise RetryableError(f"cannot connect: {err.reason}") from err

        return call_with_retries(attempt, self.retry, f"REST {url}")

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """POSTs the columnar predict body."""
        url = wire.rest_url(self.base_url, self.model_name, self.version, ":predict")
        answer = self._request(url, wire.rest_predict_body(signature_name, inputs))
        return wire.parse_rest_predict_response(answer, output_names)

    def input_shape(self, signature_name: str, input_name: str) -> tuple[int | None, ...]:
        """GETs the model metadata."""
        url = wire.rest_url(self.base_url, self.model_name, self.version, "/metadata")
        return wire.rest_input_shape(self._request(url, None), signature_name, input_name)


class GrpcBackend:
    """TF Serving's gRPC ``PredictionService``.

    Args:
        target: ``host:port`` of the gRPC endpoint (8500 by default in TF Serving).
        model_name: served model name.
        version: a pinned version, or None for the latest.
        timeout_s: deadline of one RPC.
        retry: retries on ``UNAVAILABLE``.
        channel: an existing channel (default: an insecure channel to ``target``).

    """

    def __init__(self, target: str, model_name: str, version: int | None = None,
                 timeout_s: float = 10.0, retry: RetryPolicy = DEFAULT_RETRY,
                 channel: grpc.Channel | None = None):
        self.target, self.model_name, self.version = target, model_name, version
        self.timeout_s, self.retry = timeout_s, retry
        self._channel = channel or grpc.insecure_channel(target)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def _call(self, method: Any, request: Any, what: str) -> Any:
        """One RPC with the deadline, retried on UNAVAILABLE."""
        def attempt() -> Any:
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as err:
                code = err.code()
                if code == grpc.StatusCode.UNAVAILABLE:
                    raise RetryableError(err.details()) from err
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise ServingTimeoutError(
                        f"{what}: no answer in {self.timeout_s}s") from err
                kind = _GRPC_ERRORS.get(code, ServingError)
                raise kind(f"{what}: {code.name}: {err.details()}") from err

        return call_with_retries(attempt, self.retry, what)

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Sends a ``PredictRequest``."""
        request = wire.grpc_predict_request(self.model_name, signature_name, inputs, self.version)
        what = f"gRPC Predict {self.target} {self.model_name}/{signature_name}"
        answer = self._call(self._stub.Predict, request, what)
        return wire.parse_grpc_predict_response(answer, output_names)

    def input_shape(self, signature_name: str, input_name: str) -> tuple[int | None, ...]:
        """Sends a ``GetModelMetadataRequest`` for the signature defs."""
        request = wire.grpc_metadata_request(self.model_name, self.version)
        what = f"gRPC GetModelMetadata {self.target} {self.model_name}"
        answer = self._call(self._stub.GetModelMetadata, request, what)
        return wire.grpc_input_shape(answer, signature_name, input_name)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()


class EmbeddingClient:
    """Embeds captions and image features through any ``Backend``, in batches.

    Args:
        backend: a ``LocalBackend``, ``RestBackend`` or ``GrpcBackend``.
        batch_size: rows per request.
        feature_dim: the image feature width D; None asks the backend's signature metadata once.
        max_image_bytes: the largest encoded image ``embed_images`` sends.

    """

    def __init__(self, backend: Backend, batch_size: int = 256, feature_dim: int | None = None,
                 max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend, self.batch_size = backend, batch_size
        self._feature_dim = feature_dim
        self.max_image_bytes = max_image_bytes

    @property
    def feature_dim(self) -> int | None:
        """The width D that ``embed_image`` accepts (None if the model leaves it open)."""
        if self._feature_dim is None:
            shape = self.backend.input_shape(features.EMBED_IMAGE_SIGNATURE, _IMAGE_INPUT)
            self._feature_dim = shape[-1] if len(shape) == 2 else None
        return self._feature_dim

    def _batched(self, signature: str, input_name: str, output: str, values: np.ndarray,
                 items: str) -> np.ndarray:
        """Runs ``signature`` over ``values`` [N, ...] in batches; returns [N, d].

        Raises:
            ServingError: a request failed; the message starts with the request's ``items``
                range (``images[2:4] (one request): ...``), since the server's error may name
                none (the image decoder's does not).

        """
        parts = []
        for start in range(0, len(values), self.batch_size):
            stop = min(start + self.batch_size, len(values))
            try:
                parts.append(self.backend.predict(
                    signature, {input_name: values[start:stop]}, (output,))[output])
            except ServingError as err:
                raise type(err)(f"{items}[{start}:{stop}] (one request): {err}") from err
        return np.concatenate(parts, axis=0)

    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        """Embeds raw captions [N] into L2-normalized rows [N, d] (``embed_text``)."""
        values = validate_captions(captions)
        return self._batched(features.EMBED_TEXT_SIGNATURE, _CAPTION_INPUT,
                             features.TEXT_EMBEDDING_OUTPUT, values, "captions")

    def embed_image(self, image_features: np.ndarray) -> np.ndarray:
        """Embeds image features [N, D] into L2-normalized rows [N, d] (``embed_image``)."""
        values = validate_image_features(image_features, self.feature_dim)
        return self._batched(features.EMBED_IMAGE_SIGNATURE, _IMAGE_INPUT,
                             features.IMAGE_EMBEDDING_OUTPUT, values, "image_features")

    def embed_images(self, images: Sequence[ImageSource]) -> np.ndarray:
        """Embeds encoded images [N] into L2-normalized rows [N, d] (``embed_image_bytes``).

        Args:
            images: JPEG/PNG file paths or their bytes; all are read and checked before the
                first request.

        Raises:
            ValueError: an item is unreadable, empty, not a JPEG/PNG, cut off before its end
                marker, declares too many pixels or is over ``max_image_bytes`` (named by
                index, and path for a file); nothing has been sent.
            ServingError: the server refuses a batch (data corrupt past a valid header); the
                message names the batch's items, since the decoder's own error names none.

        """
        values = validate_images(images, self.max_image_bytes)
        return self._batched(features.EMBED_IMAGE_BYTES_SIGNATURE, _IMAGE_BYTES_INPUT,
                             features.IMAGE_EMBEDDING_OUTPUT, values, "images")
