import json

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from serving import wire


def test_rest_url_with_and_without_version():
    assert wire.rest_url("http://h:8501/", "m", None, ":predict") == \
        "http://h:8501/v1/models/m:predict"
    assert wire.rest_url("http://h:8501", "m", 7, "/metadata") == \
        "http://h:8501/v1/models/m/versions/7/metadata"


def test_rest_body_is_the_documented_columnar_format():
    body = wire.rest_predict_body("embed_image",
                                  {"image_features": np.array([[1, 2.5]], np.float32)})
    assert json.loads(json.dumps(body)) == {
        "signature_name": "embed_image", "inputs": {"image_features": [[1.0, 2.5]]}}
    text = wire.rest_predict_body("embed_text", {"caption": np.array(["a dög", b"x"], object)})
    assert text["inputs"] == {"caption": ["a dög", "x"]}


def test_rest_response_named_and_single_unnamed_outputs():
    named = wire.parse_rest_predict_response({"outputs": {"o": [[1, 2]], "p": [[3]]}}, ("o",))
    np.testing.assert_array_equal(named["o"], [[1.0, 2.0]])
    single = wire.parse_rest_predict_response({"outputs": [[0.5, 0.25]]}, ("o",))
    assert single["o"].dtype == np.float32 and single["o"].tolist() == [[0.5, 0.25]]
    with pytest.raises(ValueError, match="no 'outputs'"):
        wire.parse_rest_predict_response({"error": "x"}, ("o",))
    with pytest.raises(ValueError, match=r"lacks outputs \['o'\]"):
        wire.parse_rest_predict_response({"outputs": {"p": [1]}}, ("o",))


def test_grpc_request_matches_predict_proto():
    request = wire.grpc_predict_request(
        "xmodal", "embed_text", {"caption": np.array(["a dog"], object)}, version=3)
    wire_bytes = request.SerializeToString()
    parsed = predict_pb2.PredictRequest.FromString(wire_bytes)
    assert parsed.model_spec.name == "xmodal"
    assert parsed.model_spec.signature_name == "embed_text"
    assert parsed.model_spec.version.value == 3
    tensor = parsed.inputs["caption"]
    assert tensor.dtype == tf.string.as_datatype_enum
    assert [d.size for d in tensor.tensor_shape.dim] == [1]
    assert tensor.string_val == [b"a dog"]
    unpinned = wire.grpc_predict_request("m", "s", {"image_features": np.ones((2, 3), np.float32)})
    assert not unpinned.model_spec.HasField("version")
    np.testing.assert_array_equal(tf.make_ndarray(unpinned.inputs["image_features"]),
                                  np.ones((2, 3)))


def test_grpc_response_and_metadata_parsing():
    response = predict_pb2.PredictResponse()
    response.outputs["o"].CopyFrom(tf.make_tensor_proto(np.array([[1.0, 0.0]], np.float32)))
    assert wire.parse_grpc_predict_response(response, ("o",))["o"].tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="lacks outputs"):
        wire.parse_grpc_predict_response(response, ("z",))
    metadata = get_model_metadata_pb2.GetModelMetadataResponse()
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    dims = signature_map.signature_def["embed_image"].inputs["image_features"].tensor_shape.dim
    dims.add(size=-1)
    dims.add(size=6)
    metadata.metadata["signature_def"].Pack(signature_map)
    assert wire.grpc_input_shape(metadata, "embed_image", "image_features") == (None, 6)
    rest = {"metadata": {"signature_def": json_format.MessageToDict(
        signature_map, preserving_proto_field_name=True)}}
    assert wire.rest_input_shape(rest, "embed_image", "image_features") == (None, 6)
    with pytest.raises(ValueError, match="lacks embed_text/caption"):
        wire.rest_input_shape(rest, "embed_text", "caption")
