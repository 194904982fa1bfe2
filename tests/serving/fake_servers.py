"""Loopback fakes of TF Serving (REST and gRPC) that answer with a LocalBackend."""

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.client import GrpcBackend, LocalBackend, RestBackend
from serving.retry import RetryPolicy, ServingError
from trainer import features

OUTPUT_OF = {
    features.EMBED_TEXT_SIGNATURE: features.TEXT_EMBEDDING_OUTPUT,
    features.EMBED_IMAGE_SIGNATURE: features.IMAGE_EMBEDDING_OUTPUT,
    features.EMBED_IMAGE_BYTES_SIGNATURE: features.IMAGE_EMBEDDING_OUTPUT,
}


def _rest_input(name: str, value: list) -> np.ndarray:
    """A REST input as an array; ``*_bytes`` inputs arrive as ``{"b64": ...}``, as TF Serving's."""
    if name.endswith("_bytes"):
        return np.asarray([base64.b64decode(item["b64"]) for item in value], dtype=object)
    return np.asarray(value)


class Script:
    """What the fake answers: first ``failures`` requests fail, each request sleeps ``delay_s``."""

    def __init__(self, backend: LocalBackend, feature_dim: int):
        self.backend, self.feature_dim = backend, feature_dim
        self.failures, self.delay_s, self.requests = 0, 0.0, []
        self.versions: set[int] | None = None  # the versions served (None: any)

    def next_fails(self) -> bool:
        time.sleep(self.delay_s)
        if self.failures > 0:
            self.failures -= 1
            return True
        return False

    def run(self, signature: str, inputs: dict) -> np.ndarray:
        output = OUTPUT_OF[signature]
        return self.backend.predict(signature, inputs, (output,))[output]


def start_rest(script: Script) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            script.requests.append(("GET", self.path, None))
            dims = [{"size": "-1", "name": ""}, {"size": str(script.feature_dim), "name": ""}]
            signature = {"inputs": {features.IMAGE_FEATURES_KEY: {"tensor_shape": {"dim": dims}}}}
            self._reply(200, {"metadata": {"signature_def": {"signature_def": {
                features.EMBED_IMAGE_SIGNATURE: signature}}}})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append(("POST", self.path, body))
            if script.next_fails():
                return self._reply(503, {"error": "servable not ready"})
            match = re.search(r"/v1/models/toy(?:/versions/(\d+))?:predict$", self.path)
            pinned = match and match.group(1) and int(match.group(1))
            if not match or (pinned and script.versions is not None
                             and pinned not in script.versions):
                return self._reply(404, {"error": f"no model at {self.path}"})
            inputs = {k: _rest_input(k, v) for k, v in body["inputs"].items()}
            if features.IMAGE_FEATURES_KEY in inputs:
                inputs = {k: v.astype(np.float32) for k, v in inputs.items()}
            try:
                result = script.run(body["signature_name"], inputs)
            except ServingError as err:  # TF Serving: 400 for INVALID_ARGUMENT
                return self._reply(400, {"error": str(err)})
            self._reply(200, {"outputs": result.tolist()})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, script: Script):
        self.script = script

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        self.script.requests.append(request)
        if self.script.next_fails():
            context.abort(grpc.StatusCode.UNAVAILABLE, "servable not ready")
        if request.model_spec.name != "toy":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model_spec.name}")
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        signature = request.model_spec.signature_name
        try:
            result = self.script.run(signature, inputs)
        except ServingError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        response = predict_pb2.PredictResponse()
        response.outputs[OUTPUT_OF[signature]].CopyFrom(tf.make_tensor_proto(result))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802 (gRPC method name)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        image = signature_map.signature_def[features.EMBED_IMAGE_SIGNATURE]
        dims = image.inputs[features.IMAGE_FEATURES_KEY].tensor_shape.dim
        dims.add(size=-1)
        dims.add(size=self.script.feature_dim)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.metadata["signature_def"].Pack(signature_map)
        return response


def start_grpc(script: Script) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_Servicer(script), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@contextmanager
def serving(kind: str, local: LocalBackend, feature_dim: int, timeout_s: float,
            retry: RetryPolicy) -> Iterator[tuple[Script, RestBackend | GrpcBackend]]:
    """A fake TF Serving (``kind``: ``rest`` or ``grpc``) over ``local`` and a client backend of
    it; both are stopped on exit."""
    script = Script(local, feature_dim)
    if kind == "rest":
        server, url = start_rest(script)
        try:
            yield script, RestBackend(url, "toy", timeout_s=timeout_s, retry=retry)
        finally:
            server.shutdown()
        return
    server, target = start_grpc(script)
    backend = GrpcBackend(target, "toy", timeout_s=timeout_s, retry=retry)
    try:
        yield script, backend
    finally:
        backend.close()
        server.stop(0)
