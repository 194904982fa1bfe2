"""The curated raw-data schema (for CaptionSchemaGen + ExampleValidator) of the caption examples.

It states what the ExampleGen guarantees, so that ExampleValidator stops anything that slipped
through before Transform: every feature present in every example, one value for each id and the
caption, fixed widths for the feature vectors, and no NaN/Inf (``float_domain`` with
``disallow_nan``/``disallow_inf``). TFDV has no rule for "non-empty string"; the ExampleGen itself
rejects empty captions (``trainer.tokens.text.tokenize_py``), naming file and line.
"""

from __future__ import annotations

import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.caption_example_gen.spec import DatasetSpec
from trainer.features import (
    CAPTION_FEATURES_KEY,
    CAPTION_ID_KEY,
    CAPTION_KEY,
    IMAGE_FEATURES_KEY,
    IMAGE_ID_KEY,
)


def _required(schema: schema_pb2.Schema, name: str, kind: int, width: int) -> schema_pb2.Feature:
    feature = schema.feature.add(name=name, type=kind)
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    feature.shape.dim.add(size=width)
    return feature


def _finite_floats(schema: schema_pb2.Schema, name: str, width: int) -> None:
    feature = _required(schema, name, schema_pb2.FLOAT, width)
    feature.float_domain.disallow_nan = True
    feature.float_domain.disallow_inf = True


def make_schema(image_feature_dim: int, caption_feature_dim: int = 0) -> schema_pb2.Schema:
    """Builds the raw schema for examples with image features [D] (and caption features [Dc]).

    Args:
      image_feature_dim: D, the width of ``image_features``.
      caption_feature_dim: Dc, the width of ``caption_features``; 0 means the data has none.

    Returns:
      The schema: ids and caption BYTES with shape [1], features FLOAT with shape [D] / [Dc].

    Raises:
      ValueError: for a non-positive ``image_feature_dim`` or a negative ``caption_feature_dim``.

    """
    if image_feature_dim <= 0 or caption_feature_dim < 0:
        raise ValueError(
            f"make_schema: feature widths must be known: image {image_feature_dim} (> 0), "
            f"caption {caption_feature_dim} (>= 0)"
        )
    schema = schema_pb2.Schema()
    for name in (IMAGE_ID_KEY, CAPTION_ID_KEY, CAPTION_KEY):
        _required(schema, name, schema_pb2.BYTES, 1)
    _finite_floats(schema, IMAGE_FEATURES_KEY, image_feature_dim)
    if caption_feature_dim:
        _finite_floats(schema, CAPTION_FEATURES_KEY, caption_feature_dim)
    return schema


def schema_widths(spec: DatasetSpec) -> tuple[int, int]:
    """``make_schema``'s ``(image_feature_dim, caption_feature_dim)`` of ``spec`` (0: none).

    Raises:
      ValueError: the spec has caption features of unknown width (``detect`` sets it).

    """
    caption_dim = spec.caption_feature_dim if spec.caption_features else 0
    if spec.caption_features and not caption_dim:
        raise ValueError("the DatasetSpec has caption features of unknown width "
                         "(caption_feature_dim 0)")
    return spec.image_feature_dim, caption_dim


def write_schema_file(path: str, spec: DatasetSpec) -> str:
    """Writes ``make_schema`` for ``spec``'s widths as text proto (``schema.pbtxt``).

    Args:
      path: the file to write (its folder is created).
      spec: the dataset (see ``schema_widths``).

    Returns:
      ``path``.

    """
    schema = make_schema(*schema_widths(spec))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(schema))
    return path
