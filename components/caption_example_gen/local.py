"""Running the caption ExampleGen executor directly (tests, benchmarks, debugging a dataset).

The exec properties are the ones ``make_caption_example_gen`` gives TFX, so a local run reads,
validates and writes exactly what the component would (without ML Metadata or caching).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components.caption_example_gen.executor import (
    IMAGE_FEATURES_KEY,
    Executor,
    custom_config_proto,
)
from components.caption_example_gen.report import REPORT_FILE
from components.caption_example_gen.spec import DatasetSpec


def exec_properties_for(input_base: str, spec: DatasetSpec, span: int | None = None) -> dict:
    """The exec properties TFX would pass (``span`` as its driver resolves it, when given)."""
    split = example_gen_pb2.Input.Split(name="captions", pattern=spec.input_pattern())
    outputs = [example_gen_pb2.SplitConfig.Split(name=s, hash_buckets=1) for s in spec.splits]
    output = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=outputs))
    properties: dict[str, Any] = {
        specs.INPUT_BASE_KEY: str(input_base),
        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Input(splits=[split])),
        specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output),
        specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(custom_config_proto(spec)),
    }
    if span is not None:
        properties["span"] = span
    return properties


def run_executor(
    input_base: str,
    spec: DatasetSpec,
    out_dir: str,
    span: int | None = None,
    beam_args: Sequence[str] | None = None,
    image_features: types.Artifact | None = None,
) -> tuple[standard_artifacts.Examples, dict[str, Any]]:
    """Runs ``Executor.Do`` into ``out_dir`` (with ``image_features`` as its input artifact).

    Returns:
      The Examples artifact (split names and ``ingest_*`` custom properties set) and the ingest
      report (``counts``, ``span``, ``version``, ``dataset``).

    """
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args or []))
    properties = exec_properties_for(input_base, spec, span)
    inputs = {IMAGE_FEATURES_KEY: [image_features]} if image_features is not None else {}
    Executor(context).Do(inputs, {specs.EXAMPLES_KEY: [examples]}, properties)
    with open(os.path.join(str(out_dir), REPORT_FILE), encoding="utf-8") as f:
        return examples, json.load(f)
