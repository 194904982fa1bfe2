"""The caption ExampleGen's whole-dataset rules as plain functions (fast, no Beam pipeline)."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from components.caption_example_gen import beam_steps, report
from components.caption_example_gen.readers import SKIP_SPLIT
from components.caption_example_gen.records import CaptionRecord, IngestError, ListEntry
from trainer.features import CAPTION_FEATURES_KEY, CAPTION_KEY, IMAGE_FEATURES_KEY


def _record(image="a.jpg", split="", caption_id="a.jpg#0"):
    return CaptionRecord(image, caption_id, "A dog", split, image, "cap.txt:1")


LISTED = {"a.jpg": ListEntry("a.jpg", "eval", "eval.txt:1")}


def test_assign_splits_from_record_then_list_then_policy():
    assign = beam_steps.AssignSplits("skip")
    assert list(assign.process(_record(split="test"), LISTED)) == [_record(split="test")]
    assert list(assign.process(_record(), LISTED)) == [_record(split="eval")]
    (unlisted,) = assign.process(_record(image="b.jpg", caption_id="b.jpg#3"), LISTED)
    assert unlisted.tag == beam_steps.SKIPPED_UNLISTED
    assert unlisted.value == "'b.jpg#3' (cap.txt:1)"  # shown to the user as the example
    (policy,) = assign.process(_record(split=SKIP_SPLIT), LISTED)
    assert policy.tag == beam_steps.SKIPPED_BY_SPLIT_POLICY


def test_a_caption_over_the_length_limit_is_tagged_as_a_skip():
    limit = beam_steps.MAX_CAPTION_CHARS
    longest = dataclasses.replace(_record(), caption="x" * limit)
    assert list(beam_steps.within_max_length(longest)) == [longest]
    (skip,) = beam_steps.within_max_length(dataclasses.replace(longest, caption="x" * (limit + 1)))
    assert skip.tag == beam_steps.SKIPPED_TOO_LONG == "skipped_captions_over_max_length"
    assert skip.value == "'a.jpg#0' (cap.txt:1)"
    assert report.skip_lines({skip.tag: 3}, {skip.tag: skip.value}) == [
        f"ingest: 3 caption(s) skipped: longer than {limit} characters, e.g. 'a.jpg#0' (cap.txt:1)"]


def test_assign_splits_error_policy_names_the_caption_line():
    with pytest.raises(IngestError, match=r"cap\.txt:1: image 'b\.jpg' is in no split list"):
        list(beam_steps.AssignSplits("error").process(_record(image="b.jpg"), LISTED))


def test_uncaptioned_listed_images_skip_or_error():
    entry = ListEntry("z.jpg", "train", "train.txt:4")
    groups = {"listed": [entry], "captioned": []}
    assert list(beam_steps.uncaptioned_listed(("z.jpg", groups), "skip")) == ["z.jpg"]
    with pytest.raises(IngestError, match=r"train\.txt:4: split list names image 'z\.jpg'"):
        list(beam_steps.uncaptioned_listed(("z.jpg", groups), "error"))
    captioned = {"listed": [entry], "captioned": [1, 1]}
    assert list(beam_steps.uncaptioned_listed(("z.jpg", captioned), "error")) == []


def test_check_unique_and_single_listing():
    assert list(beam_steps.check_unique(("a#0", ["f:1"]))) == ["a#0"]
    with pytest.raises(IngestError, match=r"f:9: duplicate caption id 'a#0' \(also at f:1\)"):
        list(beam_steps.check_unique(("a#0", ["f:9", "f:1"])))
    first, again = ListEntry("a", "train", "t.txt:1"), ListEntry("a", "eval", "e.txt:2")
    with pytest.raises(IngestError, match=r"t\.txt:1: image 'a' is listed again .*first at e"):
        beam_steps._single_listing(("a", [first, again]))


def test_an_empty_caption_file_or_split_list_is_named(tmp_path):
    empty = tmp_path / "Flickr8k.token.txt"
    empty.write_bytes(b"")
    with pytest.raises(IngestError, match=f"{empty}: the caption file holds no records"):
        list(beam_steps._read_captions((str(empty), ""), "flickr", {}))
    with pytest.raises(IngestError, match=r"dev\.txt: the split list holds no records"):
        list(beam_steps.nonempty(iter(()), "dev.txt", "split list"))
    assert list(beam_steps.nonempty(iter([1, 2]), "dev.txt", "split list")) == [1, 2]


def test_to_example_values():
    image = np.array([0.5, -2.0], np.float32)
    serialized = beam_steps.to_example(_record(), image, np.array([1.5], np.float32))
    feature = tf.train.Example.FromString(serialized).features.feature
    assert list(feature[IMAGE_FEATURES_KEY].float_list.value) == [0.5, -2.0]
    assert list(feature[CAPTION_FEATURES_KEY].float_list.value) == [1.5]
    assert feature[CAPTION_KEY].bytes_list.value == [b"A dog"]


def test_report_fills_zeros_counts_unused_rows_and_rejects_empty_splits():
    counts = {"examples_train": 4, "images_train": 2, "images": 2, "image_feature_rows": 5,
              "examples_eval": 1, "images_eval": 1}
    final = json.loads(report._finalize(counts, ["train", "eval"], {"skipped_x": "'a#1' (f:2)"}))
    assert final[report.UNUSED_FEATURE_ROWS] == 3
    assert final[report.SKIP_EXAMPLES] == {"skipped_x": "'a#1' (f:2)"}
    with pytest.raises(IngestError, match=r"output split\(s\) \['test'\] received no captions"):
        report._finalize(counts, ["train", "eval", "test"])



def test_skip_lines_show_nonzero_skips_with_their_example():
    counts = {"skipped_captions_of_unlisted_images": 460, "skipped_captions_by_split_policy": 0,
              report.UNUSED_FEATURE_ROWS: 2, "examples_train": 9}
    examples = {"skipped_captions_of_unlisted_images": "'x.jpg#0' (t.token.txt:7)"}
    assert report.skip_lines(counts, examples) == [
        "ingest: 460 caption(s) skipped: their image is in no split list, "
        "e.g. 'x.jpg#0' (t.token.txt:7)",
        "ingest: 2 feature row(s) unused: their image has no kept caption",
    ]
    assert report.skip_lines({"skipped_captions_of_unlisted_images": 0}, {}) == []
