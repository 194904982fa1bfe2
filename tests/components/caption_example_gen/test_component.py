"""The component factory, and the component run by TFX (its driver resolves the newest span)."""

import json
import pathlib

import pytest
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils

from components.caption_example_gen import DatasetSpec, detect
from components.caption_example_gen.component import make_caption_example_gen
from components.caption_example_gen.executor import spec_from_exec_properties
from components.caption_example_gen.synthetic import SyntheticConfig, write_synthetic_dataset

SPEC = DatasetSpec(
    format="coco",
    captions=("span-{SPAN}/ann/captions_train.json", "span-{SPAN}/ann/captions_val.json"),
    caption_splits=("train", "eval"),
    image_features="span-{SPAN}/f.npy",
    image_feature_names="span-{SPAN}/f.names.txt",
    image_feature_dim=7,
)


def test_factory_configures_input_output_and_custom_config():
    gen = make_caption_example_gen("/data", SPEC)
    props = gen.exec_properties
    assert props["input_base"] == "/data"
    (split,) = proto_utils.json_to_proto(props["input_config"], example_gen_pb2.Input()).splits
    assert split.pattern == "span-{SPAN}/ann/*.json"
    output = proto_utils.json_to_proto(props["output_config"], example_gen_pb2.Output())
    assert [s.name for s in output.split_config.splits] == ["train", "eval"]
    assert spec_from_exec_properties(props) == SPEC
    assert props["output_file_format"] == example_gen_pb2.FORMAT_TFRECORDS_GZIP


@pytest.mark.slow(minutes=2)
@pytest.mark.e2e
def test_tfx_run_ingests_the_newest_span(tmp_path):
    from tfx import v1 as tfx
    from tfx.orchestration import metadata

    data = tmp_path / "data"
    for span, images in ((1, 8), (2, 12)):
        write_synthetic_dataset(str(data / f"span-{span}"), SyntheticConfig(num_images=images))
    spec = detect(str(data))
    assert spec.captions == ("span-{SPAN}/synthetic.token.txt",)
    db = str(tmp_path / "mlmd.sqlite")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="caption-example-gen",
        pipeline_root=str(tmp_path / "root"),
        components=[make_caption_example_gen(str(data), spec)],
        metadata_connection_config=metadata.sqlite_metadata_connection_config(db),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    with metadata.Metadata(metadata.sqlite_metadata_connection_config(db)) as store:
        (artifact,) = store.store.get_artifacts_by_type("Examples")
    report = json.loads(pathlib.Path(artifact.uri, "ingest_report.json").read_text("utf-8"))
    assert report["span"] == 2  # the driver resolved {SPAN} to the newest span
    counts = report["counts"]
    assert counts["examples_train"] + counts["examples_eval"] == 60  # span-2 has 12 images x 5
    props = artifact.custom_properties
    assert props["ingest_examples_train"].int_value == counts["examples_train"]
