"""The caption ExampleGen the pipeline builds: a ``FileBasedExampleGen`` with our executor.

It has one optional input, ``image_features`` (an ImageFeaturizer output).
"""

from __future__ import annotations

from tfx import types
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter

from components.artifacts import ImageFeatures
from components.caption_example_gen.executor import (
    IMAGE_FEATURES_KEY,
    Executor,
    custom_config_proto,
)
from components.caption_example_gen.spec import DatasetSpec

INPUT_SPLIT_NAME = "captions"


class CaptionExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """The stock file-based ExampleGen spec plus the optional ``image_features`` input."""

    INPUTS = {IMAGE_FEATURES_KEY: ChannelParameter(type=ImageFeatures, optional=True)}


class CaptionExampleGen(FileBasedExampleGen):
    """``FileBasedExampleGen`` (same driver) reading a caption dataset.

    The stock driver still resolves spans and fingerprints the caption files; the image features
    may arrive as an input artifact, so that ML Metadata records the featurizer run each Examples
    artifact was made from.
    """

    SPEC_CLASS = CaptionExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_base: str, dataset: DatasetSpec,
                 image_features: types.BaseChannel | None = None):
        """See ``make_caption_example_gen``."""
        input_config = example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=INPUT_SPLIT_NAME, pattern=dataset.input_pattern())])
        output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=1)
                    for name in dataset.splits]))
        spec = CaptionExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=custom_config_proto(dataset),
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            image_features=image_features,
            examples=types.Channel(type=standard_artifacts.Examples),
        )
        # FileBasedExampleGen.__init__ builds the stock spec, which has no inputs.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)


def make_caption_example_gen(input_base: str, dataset: DatasetSpec,
                             image_features: types.BaseChannel | None = None
                             ) -> CaptionExampleGen:
    """Builds the caption ExampleGen for ``dataset`` under ``input_base``.

    The input split pattern is the caption file(s) (``dataset.input_pattern()``, possibly with
    ``{SPAN}``), so TFX fingerprints them and picks the newest span; the output splits are the
    dataset's own (``dataset.splits``), filled by the executor from the dataset's split, not by
    hashing (the hash buckets are required by TFX's config checks and unused).

    Args:
      input_base: the dataset folder (local path or cloud URI).
      dataset: the layout and options (see ``detect``); with ``image_features`` connected, its
        ``image_features`` / ``image_feature_names`` stay empty.
      image_features: an ``ImageFeatures`` channel (ImageFeaturizer output) that supplies the
        image features instead of files of the dataset.

    Returns:
      The component; its ``outputs["examples"]`` has one GZIP TFRecord folder per split and
      ``ingest_report.json``.

    """
    return CaptionExampleGen(input_base, dataset, image_features)
