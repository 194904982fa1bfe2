"""The run summary tells the terminal what the caption ExampleGen skipped by policy."""

from ml_metadata.proto import metadata_store_pb2

from pipeline.mlmd_summary import NodeRun
from pipeline.summary import format_summary, ingest_skip_lines


def _example_gen(properties: dict) -> dict[str, NodeRun]:
    artifact = metadata_store_pb2.Artifact()
    for name, value in properties.items():
        field = "int_value" if isinstance(value, int) else "string_value"
        setattr(artifact.custom_properties[name], field, value)
    return {"CaptionExampleGen": NodeRun("CaptionExampleGen", "ran", 1.0, 0,
                                         {"examples": [artifact]})}


def test_unlisted_captions_are_counted_with_an_example():
    nodes = _example_gen({
        "ingest_examples_train": 30000,
        "ingest_skipped_captions_of_unlisted_images": 460,
        "ingest_example_skipped_captions_of_unlisted_images": "'x.jpg#0' (t.token.txt:7)",
        "ingest_skipped_captions_by_split_policy": 0,
        "span": 0,
    })
    expected = ("ingest: 460 caption(s) skipped: their image is in no split list, "
                "e.g. 'x.jpg#0' (t.token.txt:7)")
    assert ingest_skip_lines(nodes) == [expected]
    assert expected in format_summary(nodes, "/root").splitlines()


def test_no_skips_or_no_example_gen_print_nothing():
    assert ingest_skip_lines(_example_gen({"ingest_skipped_captions_of_unlisted_images": 0})) == []
    assert ingest_skip_lines({}) == []
