"""The caption ExampleGen executor: a ``BaseExampleGenExecutor`` that splits by the dataset.

It reads the dataset described by the ``DatasetSpec`` in ``custom_config`` once, validates it,
joins the features and partitions the examples by the dataset's own split (Beam ``Partition``),
never by hashing. Skips allowed by policy are counted into ``<examples uri>/ingest_report.json``,
the logs and the Examples artifact's custom properties (``ingest_<count name>``).

The image features come either from files of the dataset (the DatasetSpec names them) or from
the optional ``image_features`` input artifact of an upstream ImageFeaturizer (the DatasetSpec
then leaves ``image_features`` and ``image_feature_names`` empty); exactly one source is allowed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import apache_beam as beam
from absl import logging
from google.protobuf import wrappers_pb2
from tfx import types
from tfx.components.example_gen import utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.caption_example_gen import beam_steps, report
from components.caption_example_gen.spec import DatasetSpec
from components.image_featurizer.outputs import output_paths

IMAGE_FEATURES_KEY = "image_features"  # the optional input artifact (an ImageFeaturizer output)
FEATURES_NAME_PROPERTY = "features_name"  # the artifact's file stem, set by its producer
_REPORT_URI_KEY = "_ingest_report_uri"
_ARTIFACT_FILES_KEY = "_image_features_files"  # (matrix, names) of the input artifact
Resolver = Callable[[str], str]  # a DatasetSpec path -> the file to read


def custom_config_proto(spec: DatasetSpec) -> example_gen_pb2.CustomConfig:
    """Packs a DatasetSpec (as JSON) into the ExampleGen's ``custom_config``."""
    config = example_gen_pb2.CustomConfig()
    text = json.dumps(spec.to_custom_config(), sort_keys=True)
    config.custom_config.Pack(wrappers_pb2.StringValue(value=text))
    return config


def spec_from_exec_properties(exec_properties: Mapping[str, Any]) -> DatasetSpec:
    """Unpacks the DatasetSpec from the ``custom_config`` exec property (a JSON proto string)."""
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        raise ValueError("caption ExampleGen: custom_config with a DatasetSpec is required")
    config = proto_utils.json_to_proto(raw, example_gen_pb2.CustomConfig())
    text = wrappers_pb2.StringValue()
    if not config.custom_config.Unpack(text):
        raise ValueError(f"caption ExampleGen: custom_config is not a packed DatasetSpec: {raw}")
    return DatasetSpec.from_dict(json.loads(text.value))


def resolve_path(exec_properties: Mapping[str, Any], path: str) -> str:
    """Joins ``path`` to ``input_base`` and fills ``{SPAN}``/``{VERSION}`` like TFX's driver."""
    split = example_gen_pb2.Input.Split(name="path", pattern=path)
    is_span, is_date, is_version = utils.verify_split_pattern_specs(split)
    filled = utils.get_pattern_for_span_version(
        path,
        is_span,
        is_date,
        is_version,
        exec_properties.get(utils.SPAN_PROPERTY_NAME) or 0,
        exec_properties.get(utils.VERSION_PROPERTY_NAME),
    )
    return os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], filled)


def _caption_files(spec: DatasetSpec, resolve: Resolver) -> list[tuple[str, str]]:
    splits = spec.caption_splits or ("",) * len(spec.captions)
    return [(resolve(path), split) for path, split in zip(spec.captions, splits, strict=True)]


def artifact_feature_files(
    input_dict: Mapping[str, list[types.Artifact]], spec: DatasetSpec
) -> tuple[str, str] | None:
    """``(matrix, names)`` paths of the ``image_features`` input artifact, or None without one.

    Raises:
      ValueError: both the artifact and the DatasetSpec's files are given, or neither is, or
        the artifact lacks its ``features_name`` property.

    """
    artifacts = input_dict.get(IMAGE_FEATURES_KEY) or []
    if not artifacts:
        if not spec.image_features:
            raise ValueError("caption ExampleGen: the DatasetSpec names no image_features file "
                             f"and no {IMAGE_FEATURES_KEY!r} input artifact is connected")
        return None
    if spec.image_features:
        raise ValueError(f"caption ExampleGen: image features given twice: the DatasetSpec names "
                         f"{spec.image_features!r} and the {IMAGE_FEATURES_KEY!r} input artifact "
                         f"is connected; leave the DatasetSpec's image_features empty")
    artifact = artifact_utils.get_single_instance(list(artifacts))
    name = artifact.get_string_custom_property(FEATURES_NAME_PROPERTY)
    if not name:
        raise ValueError(f"image_features artifact {artifact.uri} has no "
                         f"{FEATURES_NAME_PROPERTY!r} custom property")
    paths = output_paths(artifact.uri, name)
    return paths["features"], paths["names"]


def _feature_paths(spec: DatasetSpec, resolve: Resolver,
                   artifact_files: Sequence[str] | None) -> tuple[tuple, tuple | None]:
    matrix, names = artifact_files or (resolve(spec.image_features),
                                       resolve(spec.image_feature_names))
    image = (matrix, names, spec.image_feature_dim)
    if not spec.caption_features:
        return image, None
    caption_ids = resolve(spec.caption_feature_ids)
    return image, (resolve(spec.caption_features), caption_ids, spec.caption_feature_dim)


def _assign_and_check(
    records: beam.PCollection, listed: beam.PCollection, spec: DatasetSpec
) -> tuple[beam.PCollection, dict[str, beam.PCollection]]:
    """Assigns splits and checks ids: returns the kept records and each policy's skips.

    A caption over the length limit is skipped first, so an image left with no caption falls
    under the policy for listed images without captions.
    """
    bounded = records | "CaptionLength" >> beam.FlatMap(
        beam_steps.within_max_length
    ).with_outputs(beam_steps.SKIPPED_TOO_LONG, main="kept")
    assigned = bounded.kept | "AssignSplits" >> beam.ParDo(
        beam_steps.AssignSplits(spec.unlisted_images), beam.pvalue.AsDict(listed)
    ).with_outputs(beam_steps.SKIPPED_UNLISTED, beam_steps.SKIPPED_BY_SPLIT_POLICY, main="kept")
    list_keys = bounded.kept | "ListKeys" >> beam.Map(lambda r: (r.list_key, 1))
    uncaptioned = (
        {"listed": listed, "captioned": list_keys}
        | "ListedVsCaptioned" >> beam.CoGroupByKey()
        | "Uncaptioned"
        >> beam.FlatMap(beam_steps.uncaptioned_listed, spec.uncaptioned_listed_images)
    )
    _ = (
        records
        | "CaptionIds" >> beam.Map(lambda r: (r.caption_id, r.source))
        | "GroupCaptionIds" >> beam.GroupByKey()
        | "UniqueCaptionIds" >> beam.FlatMap(beam_steps.check_unique)
    )
    skipped = {
        beam_steps.SKIPPED_UNLISTED: assigned[beam_steps.SKIPPED_UNLISTED],
        beam_steps.SKIPPED_BY_SPLIT_POLICY: assigned[beam_steps.SKIPPED_BY_SPLIT_POLICY],
        beam_steps.SKIPPED_UNCAPTIONED: uncaptioned,
        beam_steps.SKIPPED_TOO_LONG: bounded[beam_steps.SKIPPED_TOO_LONG],
    }
    return assigned.kept, skipped


@beam.ptransform_fn
def CaptionsToExamples(  # noqa: N802  (Beam PTransform names are classes by convention)
    pipeline: beam.Pipeline, exec_properties: Mapping[str, Any], split_pattern: str
) -> beam.PCollection:
    """The whole dataset -> PCollection[(split, image_id, serialized tf.Example)].

    ``split_pattern`` (the caption files, already span-resolved by TFX's driver) is what TFX
    fingerprints; the files themselves come from the DatasetSpec, resolved the same way.
    """
    del split_pattern
    spec = spec_from_exec_properties(exec_properties)

    def resolve(path: str) -> str:
        return resolve_path(exec_properties, path)

    records = pipeline | "ReadCaptions" >> beam_steps.ReadCaptions(
        spec.format, _caption_files(spec, resolve), spec.karpathy_split_map()
    )
    listed = pipeline | "ReadSplitLists" >> beam_steps.ReadSplitLists(
        [(split, resolve(path)) for split, path in spec.split_lists]
    )
    kept, skipped = _assign_and_check(records, listed, spec)
    image_paths, caption_paths = _feature_paths(spec, resolve,
                                                exec_properties.get(_ARTIFACT_FILES_KEY))
    joined = kept | "JoinFeatures" >> beam.ParDo(
        beam_steps.JoinFeatures(image_paths, caption_paths)
    )
    report.write_counts(
        joined, skipped, image_paths[1], list(spec.splits), exec_properties[_REPORT_URI_KEY]
    )
    return joined


def _split_index(item: tuple[str, str, bytes], num_partitions: int, splits: list[str]) -> int:
    del num_partitions
    return splits.index(item[0])


class Executor(BaseExampleGenExecutor):
    """Caption ExampleGen: one tf.Example per caption, split by the dataset's own split."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802  (TFX API)
        """Returns the PTransform reading the whole dataset into (split, image_id, example)."""
        return CaptionsToExamples

    def GenerateExamplesByBeam(  # noqa: N802  (TFX API)
        self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
    ) -> dict[str, beam.PCollection]:
        """Reads the dataset once and partitions it into the output config's splits."""
        input_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input()
        )
        output_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output()
        )
        splits = utils.generate_output_split_names(input_config, output_config)
        spec = spec_from_exec_properties(exec_properties)
        if sorted(splits) != sorted(spec.splits):
            raise ValueError(
                f"output_config splits {splits} differ from the DatasetSpec's {spec.splits}"
            )
        keyed = pipeline | "CaptionsToExamples" >> self.GetInputSourceToExamplePTransform()(
            exec_properties, input_config.splits[0].pattern
        )
        parts = keyed | "SplitByDataset" >> beam.Partition(_split_index, len(splits), splits)
        return {
            name: parts[i] | f"Serialized[{name}]" >> beam.Map(lambda t: t[2])
            for i, name in enumerate(splits)
        }

    def Do(  # noqa: N802  (TFX API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Writes the splits, then the ingest report (JSON, logs, artifact properties)."""
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        report_path = os.path.join(examples.uri, report.REPORT_FILE)
        artifact_files = artifact_feature_files(input_dict,
                                                spec_from_exec_properties(exec_properties))
        exec_properties = {**exec_properties, _REPORT_URI_KEY: report_path,
                           _ARTIFACT_FILES_KEY: artifact_files}
        super().Do(input_dict, output_dict, exec_properties)
        _publish_report(examples, report_path, exec_properties)


def _publish_report(
    artifact: types.Artifact, report_path: str, exec_properties: Mapping[str, Any]
) -> None:
    counts, examples = report.read_counts(report_path)
    spec = spec_from_exec_properties(exec_properties)
    full = {
        "counts": counts,
        report.SKIP_EXAMPLES: examples,
        "span": exec_properties.get(utils.SPAN_PROPERTY_NAME) or 0,
        "version": exec_properties.get(utils.VERSION_PROPERTY_NAME),
        "dataset": spec.to_custom_config(),
    }
    with fileio.open(report_path, "w") as f:
        json.dump(full, f, indent=2, sort_keys=True)
    for name, value in counts.items():
        artifact.set_int_custom_property(f"{report.COUNT_PROPERTY_PREFIX}{name}", int(value))
    for name, example in examples.items():
        artifact.set_string_custom_property(f"{report.EXAMPLE_PROPERTY_PREFIX}{name}", example)
    logging.info("Caption ExampleGen ingest counts: %s", json.dumps(counts, sort_keys=True))
    for line in report.skip_lines(counts, examples):
        logging.warning("Caption ExampleGen %s", line)
