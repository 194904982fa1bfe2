"""The curated schema: its contents, its file, and what TFDV flags with it."""

import dataclasses
import pathlib

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_data_validation import validate_statistics
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from components.caption_example_gen import DatasetSpec
from components.caption_example_gen.beam_steps import to_example
from components.caption_example_gen.records import CaptionRecord
from components.caption_example_gen.schema import make_schema, write_schema_file
from trainer.features import CAPTION_FEATURES_KEY, IMAGE_FEATURES_KEY, REQUIRED_RAW_KEYS


def test_schema_fixes_types_shapes_presence_and_finiteness():
    schema = make_schema(4, caption_feature_dim=3)
    features = {f.name: f for f in schema.feature}
    assert sorted(features) == sorted([*REQUIRED_RAW_KEYS, CAPTION_FEATURES_KEY])
    image = features[IMAGE_FEATURES_KEY]
    assert image.type == schema_pb2.FLOAT and [d.size for d in image.shape.dim] == [4]
    assert image.float_domain.disallow_nan and image.float_domain.disallow_inf
    assert [d.size for d in features[CAPTION_FEATURES_KEY].shape.dim] == [3]
    for key in REQUIRED_RAW_KEYS:
        assert features[key].presence.min_fraction == 1.0
    assert CAPTION_FEATURES_KEY not in {f.name for f in make_schema(4).feature}
    with pytest.raises(ValueError, match="feature widths must be known"):
        make_schema(0)


def test_write_schema_file_round_trips(tmp_path):
    spec = DatasetSpec(format="karpathy", captions=("d.json",), image_features="f.npy",
                       image_feature_names="f.txt", image_feature_dim=5,
                       splits=("train", "eval", "test"))
    path = write_schema_file(str(tmp_path / "schema" / "schema.pbtxt"), spec)
    parsed = text_format.Parse(pathlib.Path(path).read_text("utf-8"), schema_pb2.Schema())
    assert parsed == make_schema(5)


def _anomalies(serialized_examples):
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    stats = stats_impl.generate_statistics_in_memory(decoder.DecodeBatch(serialized_examples))
    anomalies = validate_statistics(stats, make_schema(2))
    return {name: info.short_description for name, info in anomalies.anomaly_info.items()}


def _example(values, caption_id="a#0"):
    record = CaptionRecord("a", caption_id, "A dog", "train", "a", "f:1")
    return to_example(record, np.array(values, np.float32), None)


def test_tfdv_flags_what_slipped_through():
    assert _anomalies([_example([1.0, 2.0]), _example([0.0, 3.0], "a#1")]) == {}
    assert IMAGE_FEATURES_KEY in _anomalies([_example([1.0, float("nan")])])
    assert IMAGE_FEATURES_KEY in _anomalies([_example([1.0, 2.0, 3.0])])


def test_schema_gen_writes_the_schema_of_the_dataset_widths(tmp_path):
    from tfx.types import standard_artifacts
    from tfx.utils import io_utils

    from components.caption_example_gen.schema_gen import CaptionSchemaGen, Executor

    spec = DatasetSpec(format="karpathy", captions=("d.json",), caption_features="c.npy",
                       caption_feature_ids="c.ids.txt", caption_feature_dim=3,
                       image_features="f.npy", image_feature_names="f.txt", image_feature_dim=5,
                       splits=("train", "eval", "test"))
    component = CaptionSchemaGen(spec)
    assert component.exec_properties == {"image_feature_dim": 5, "caption_feature_dim": 3}
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    Executor().Do({}, {"schema": [schema]}, component.exec_properties)
    written = io_utils.SchemaReader().read(str(tmp_path / "schema" / "schema.pbtxt"))
    assert written == make_schema(5, 3)
    with pytest.raises(ValueError, match="caption features of unknown width"):
        CaptionSchemaGen(dataclasses.replace(spec, caption_feature_dim=0))
