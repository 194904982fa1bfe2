"""TF Serving request and response formats (REST JSON and gRPC ``PredictRequest``).

REST (https://www.tensorflow.org/tfx/serving/api_rest): ``POST
/v1/models/<name>[/versions/<v>]:predict`` with the columnar body ``{"signature_name": ...,
"inputs": {<input>: <nested list>}}``; the answer is ``{"outputs": {<output>: <nested list>}}``,
or ``{"outputs": <nested list>}`` when the signature has a single output. Model metadata is
``GET /v1/models/<name>[/versions/<v>]/metadata``. Binary inputs follow TF Serving's rule: an
input whose name ends in ``_bytes`` (``image_bytes``) carries each value as ``{"b64": <base64>}``.

gRPC: ``tensorflow.serving.PredictionService/Predict`` with a ``predict_pb2.PredictRequest``
(``model_spec.name``, ``model_spec.signature_name``, optional ``model_spec.version``, inputs as
``TensorProto``).
"""

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

SIGNATURE_DEF_FIELD = "signature_def"
BINARY_INPUT_SUFFIX = "_bytes"


def rest_url(base_url: str, model_name: str, version: int | None, verb: str) -> str:
    """Returns the REST URL of ``verb`` (``":predict"`` or ``"/metadata"``) for a model.

    Args:
        base_url: server root, e.g. ``http://localhost:8501``.
        model_name: served model name.
        version: a specific version, or None for the server's choice (the latest).
        verb: ``":predict"`` or ``"/metadata"``.

    Returns:
        The full URL.

    """
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}"
    if version is not None:
        url += f"/versions/{int(version)}"
    return url + verb


def _jsonable(value: np.ndarray) -> list[Any]:
    """Nested lists for JSON: bytes are decoded as UTF-8 text, numbers stay numbers."""
    if value.dtype.kind in ("S", "O"):
        return [_jsonable(v) if isinstance(v, np.ndarray) else _text(v) for v in value]
    return value.tolist()


def _text(value: Any) -> str:
    """A caption as JSON text (bytes are decoded as UTF-8)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _b64(value: np.ndarray) -> list[dict[str, str]]:
    """Binary values [N] as TF Serving's REST form ``[{"b64": <base64 text>}, ...]``."""
    return [{"b64": base64.b64encode(bytes(v)).decode("ascii")} for v in value]


def rest_predict_body(signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Builds the columnar REST predict body.

    Args:
        signature_name: e.g. ``"embed_text"``.
        inputs: input name → array (strings [N], float32 [N, D], or bytes [N] under a name
            ending in ``_bytes``).

    Returns:
        ``{"signature_name": signature_name, "inputs": {name: nested list}}``; binary inputs
        are lists of ``{"b64": ...}``.

    """
    return {
        "signature_name": signature_name,
        "inputs": {name: (_b64(np.asarray(value, dtype=object))
                          if name.endswith(BINARY_INPUT_SUFFIX) else _jsonable(np.asarray(value)))
                   for name, value in inputs.items()},
    }


def parse_rest_predict_response(body: Mapping[str, Any],
                                output_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Reads the outputs of a REST predict answer.

    Args:
        body: the decoded JSON answer.
        output_names: the signature's output names (one name covers the unnamed single-output
            form of the columnar answer).

    Returns:
        Output name → float32 array.

    Raises:
        ValueError: the answer has no ``outputs`` or lacks one of ``output_names``.

    """
    if "outputs" not in body:
        raise ValueError(f"REST predict answer has no 'outputs' field: keys {sorted(body)}")
    outputs = body["outputs"]
    if not isinstance(outputs, Mapping):
        if len(output_names) != 1:
            raise ValueError(f"REST answer has one unnamed output, expected {output_names}")
        outputs = {output_names[0]: outputs}
    missing = [name for name in output_names if name not in outputs]
    if missing:
        raise ValueError(f"REST predict answer lacks outputs {missing}; has {sorted(outputs)}")
    return {name: np.asarray(outputs[name], dtype=np.float32) for name in output_names}


def grpc_predict_request(model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray],
                         version: int | None = None) -> predict_pb2.PredictRequest:
    """Builds a gRPC ``PredictRequest``.

    Args:
        model_name: served model name.
        signature_name: e.g. ``"embed_image"``.
        inputs: input name → array (strings [N] or float32 [N, D]).
        version: a specific version, or None for the latest.

    Returns:
        The request proto.

    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def parse_grpc_predict_response(response: predict_pb2.PredictResponse,
                                output_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Reads ``output_names`` from a ``PredictResponse`` as float32 arrays.

    Raises:
        ValueError: an expected output is missing.

    """
    missing = [name for name in output_names if name not in response.outputs]
    if missing:
        raise ValueError(f"gRPC predict answer lacks outputs {missing}; "
                         f"has {sorted(response.outputs)}")
    return {name: tf.make_ndarray(response.outputs[name]).astype(np.float32)
            for name in output_names}


def grpc_metadata_request(
        model_name: str, version: int | None = None,
) -> get_model_metadata_pb2.GetModelMetadataRequest:
    """Builds a ``GetModelMetadataRequest`` asking for the signature defs."""
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = int(version)
    request.metadata_field.append(SIGNATURE_DEF_FIELD)
    return request


def grpc_input_shape(response: get_model_metadata_pb2.GetModelMetadataResponse,
                     signature_name: str, input_name: str) -> tuple[int | None, ...]:
    """The shape (None for unknown dims) of one signature input from a metadata answer."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
    signature = signature_map.signature_def[signature_name]
    dims = signature.inputs[input_name].tensor_shape.dim
    return tuple(d.size if d.size >= 0 else None for d in dims)


def rest_input_shape(body: Mapping[str, Any], signature_name: str,
                     input_name: str) -> tuple[int | None, ...]:
    """The shape (None for unknown dims) of one signature input from a REST metadata answer.

    Raises:
        ValueError: the answer does not describe ``signature_name`` / ``input_name``.

    """
    try:
        signatures = body["metadata"]["signature_def"]["signature_def"]
        dims = signatures[signature_name]["inputs"][input_name]["tensor_shape"]["dim"]
    except KeyError as err:
        raise ValueError(f"REST metadata lacks {signature_name}/{input_name}: "
                         f"missing key {err}") from err
    sizes = (int(d["size"]) for d in dims)
    return tuple(s if s >= 0 else None for s in sizes)
