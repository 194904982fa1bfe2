"""The factory the pipeline calls: a ``FileBasedExampleGen`` running the caption executor."""

from __future__ import annotations

from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.caption_example_gen.executor import Executor, custom_config_proto
from components.caption_example_gen.spec import DatasetSpec

INPUT_SPLIT_NAME = "captions"


def make_caption_example_gen(input_base: str, dataset: DatasetSpec) -> FileBasedExampleGen:
    """Builds the caption ExampleGen for ``dataset`` under ``input_base``.

    The input split pattern is the caption file(s) (``dataset.input_pattern()``, possibly with
    ``{SPAN}``), so TFX fingerprints them and picks the newest span; the output splits are the
    dataset's own (``dataset.splits``), filled by the executor from the dataset's split, not by
    hashing (the hash buckets below are required by TFX's config checks and unused).

    Args:
      input_base: the dataset folder (local path or cloud URI).
      dataset: the layout and options (see ``detect``).

    Returns:
      The component; its ``outputs["examples"]`` has one GZIP TFRecord folder per split and
      ``ingest_report.json``.

    """
    input_config = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name=INPUT_SPLIT_NAME, pattern=dataset.input_pattern())]
    )
    output_config = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=1)
                for name in dataset.splits
            ]
        )
    )
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=input_config,
        output_config=output_config,
        custom_config=custom_config_proto(dataset),
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
    )
