"""CaptionSchemaGen: emits the curated schema of a dataset as a Schema artifact at run time.

The schema follows from the dataset's feature widths alone, so it is made inside the pipeline
rather than written to a file beforehand: building or compiling the pipeline then writes nothing,
and a cloud run needs no schema file uploaded next to it. Only the widths are exec properties, so
the component stays cached while they do not change.
"""

from __future__ import annotations

import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from components.caption_example_gen.schema import make_schema, schema_widths
from components.caption_example_gen.spec import DatasetSpec

IMAGE_FEATURE_DIM_KEY = "image_feature_dim"
CAPTION_FEATURE_DIM_KEY = "caption_feature_dim"  # 0: no caption features
SCHEMA_KEY = "schema"
SCHEMA_FILE = "schema.pbtxt"  # the file name ImportSchemaGen writes, which readers look for


class Executor(base_executor.BaseExecutor):
    """Writes ``<schema uri>/schema.pbtxt`` for the feature widths in the exec properties."""

    def Do(  # noqa: N802  (TFX executor API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Writes the schema file into the output artifact."""
        del input_dict
        schema = make_schema(int(exec_properties[IMAGE_FEATURE_DIM_KEY]),
                             int(exec_properties[CAPTION_FEATURE_DIM_KEY]))
        artifact = artifact_utils.get_single_instance(output_dict[SCHEMA_KEY])
        io_utils.write_pbtxt_file(os.path.join(artifact.uri, SCHEMA_FILE), schema)


class CaptionSchemaGenSpec(types.ComponentSpec):
    """Parameter and output of CaptionSchemaGen."""

    PARAMETERS = {
        IMAGE_FEATURE_DIM_KEY: ExecutionParameter(type=int),
        CAPTION_FEATURE_DIM_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {}
    OUTPUTS = {SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


class CaptionSchemaGen(base_component.BaseComponent):
    """The curated schema (``schema.make_schema``) of a caption dataset, as a Schema artifact."""

    SPEC_CLASS = CaptionSchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, dataset: DatasetSpec):
        """Args: dataset: the caption ExampleGen's DatasetSpec (its feature widths set)."""
        image_dim, caption_dim = schema_widths(dataset)  # fails when the pipeline is built
        super().__init__(spec=CaptionSchemaGenSpec(
            image_feature_dim=image_dim, caption_feature_dim=caption_dim,
            schema=types.Channel(type=standard_artifacts.Schema)))
