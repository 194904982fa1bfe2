"""The caption ExampleGen executor, run directly (as TFX's own ExampleGen tests do) on fixtures."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.caption_example_gen import DatasetSpec, IngestError, local
from components.caption_example_gen.validation import MAX_CAPTION_CHARS
from trainer.features import (
    CAPTION_FEATURES_KEY,
    CAPTION_ID_KEY,
    CAPTION_KEY,
    IMAGE_FEATURES_KEY,
    IMAGE_ID_KEY,
)

IMAGE_ROWS = {  # float16 image features; "d.jpg" has no captions (a counted skip)
    "a.jpg": [0.5, -1.25, 3.0],
    "b.jpg": [0.1, 0.2, 0.3],
    "c.jpg": [6.0, 0.0, -0.75],
    "d.jpg": [1.0, 1.0, 1.0],
    "e.jpg": [2.0, 2.0, 2.0],
}
# Captions at and just over the length limit (after stripping surrounding whitespace).
LONGEST = "A " + "dog " * ((MAX_CAPTION_CHARS - 2) // 4) + "x" * ((MAX_CAPTION_CHARS - 2) % 4)
TOO_LONG = LONGEST + "s"
FLICKR_CAPTIONS = [
    "a.jpg#0\tA dog runs .",
    "a.jpg#1\tThe dog jumps",
    "b.jpg#0\tTwo cats sleep",
    "c.jpg#0\tA red car",
    "c.jpg#1\tCars on a road",
    "e.jpg#0\tIn no split list",
]


def _write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _write_features(root, rows, stem="img", names_suffix=".names.txt"):
    (root / "features").mkdir(parents=True, exist_ok=True)
    np.save(root / "features" / f"{stem}.npy", np.array(list(rows.values()), np.float16))
    _write_lines(root / "features" / f"{stem}{names_suffix}", list(rows))


def flickr_fixture(root, captions=FLICKR_CAPTIONS, lists=None, rows=None):
    """Writes a tiny Flickr-layout dataset; returns its DatasetSpec."""
    lists = lists or {"train": ["a.jpg", "b.jpg"], "eval": ["c.jpg"]}
    _write_lines(root / "cap.token.txt", captions)
    for split, names in lists.items():
        _write_lines(root / f"{split}.txt", names)
    _write_features(root, rows or IMAGE_ROWS)
    return DatasetSpec(
        format="flickr",
        captions=("cap.token.txt",),
        image_features="features/img.npy",
        image_feature_names="features/img.names.txt",
        image_feature_dim=3,
        split_lists=tuple((split, f"{split}.txt") for split in lists),
    )


def run_executor(input_base, spec, out_dir, span=None, beam_args=None):
    """Runs Executor.Do; returns (Examples artifact, {split: [tf.train.Example]}, report)."""
    examples, report = local.run_executor(str(input_base), spec, str(out_dir), span, beam_args)
    return examples, read_splits(out_dir, spec.splits), report


def read_splits(out_dir, splits):
    result = {}
    for split in splits:
        files = tf.io.gfile.glob(os.path.join(out_dir, f"Split-{split}", "*.gz"))
        data = tf.data.TFRecordDataset(files, compression_type="GZIP")
        result[split] = [tf.train.Example.FromString(r.numpy()) for r in data]
    return result


def flat(example):
    """An Example as {key: str or list of floats}, sorted for comparison."""
    out = {}
    for key, feature in example.features.feature.items():
        if feature.HasField("bytes_list"):
            out[key] = feature.bytes_list.value[0].decode("utf-8")
        else:
            out[key] = list(feature.float_list.value)
    return out


def by_caption(examples):
    return {flat(e)[CAPTION_ID_KEY]: flat(e) for e in examples}


def f16(values):
    return np.array(values, np.float16).astype(np.float32).tolist()


def test_flickr_round_trip_values_counts_and_report(tmp_path):
    spec = flickr_fixture(tmp_path / "data")
    artifact, splits, report = run_executor(tmp_path / "data", spec, tmp_path / "out")
    train, evals = by_caption(splits["train"]), by_caption(splits["eval"])
    assert sorted(train) == ["a.jpg#0", "a.jpg#1", "b.jpg#0"]
    assert sorted(evals) == ["c.jpg#0", "c.jpg#1"]
    assert train["a.jpg#1"] == {
        IMAGE_ID_KEY: "a.jpg",
        CAPTION_ID_KEY: "a.jpg#1",
        CAPTION_KEY: "The dog jumps",
        IMAGE_FEATURES_KEY: f16(IMAGE_ROWS["a.jpg"]),
    }
    assert evals["c.jpg#0"][IMAGE_FEATURES_KEY] == f16(IMAGE_ROWS["c.jpg"])
    counts = report["counts"]
    assert counts == {
        "examples_train": 3, "examples_eval": 2, "images_train": 2, "images_eval": 1,
        "images": 3, "image_feature_rows": 5,
        "skipped_captions_of_unlisted_images": 1,  # e.jpg#0
        "skipped_feature_rows_without_captions": 2,  # d.jpg and e.jpg (whose caption was skipped)
        "skipped_listed_images_without_captions": 0,
        "skipped_captions_by_split_policy": 0,
        "skipped_captions_over_max_length": 0,
    }
    assert report["dataset"] == spec.to_custom_config()
    assert artifact.get_int_custom_property("ingest_skipped_captions_of_unlisted_images") == 1
    example = f"'e.jpg#0' ({tmp_path / 'data' / 'cap.token.txt'}:6)"
    assert report["skip_examples"] == {"skipped_captions_of_unlisted_images": example}
    assert artifact.get_string_custom_property(
        "ingest_example_skipped_captions_of_unlisted_images") == example
    assert artifact.get_int_custom_property("ingest_examples_train") == 3
    assert artifact.split_names == '["train", "eval"]'


def test_a_caption_over_the_length_limit_is_a_counted_named_skip(tmp_path):
    assert len(LONGEST) == MAX_CAPTION_CHARS
    captions = [*FLICKR_CAPTIONS, f"a.jpg#2\t {LONGEST} ", f"b.jpg#1\t{TOO_LONG}"]
    spec = flickr_fixture(tmp_path / "data", captions=captions)
    artifact, splits, report = run_executor(tmp_path / "data", spec, tmp_path / "out")
    train = by_caption(splits["train"])
    assert sorted(train) == ["a.jpg#0", "a.jpg#1", "a.jpg#2", "b.jpg#0"]
    assert train["a.jpg#2"][CAPTION_KEY] == LONGEST
    assert report["counts"]["skipped_captions_over_max_length"] == 1
    example = f"'b.jpg#1' ({tmp_path / 'data' / 'cap.token.txt'}:8)"
    assert report["skip_examples"]["skipped_captions_over_max_length"] == example
    assert artifact.get_int_custom_property("ingest_skipped_captions_over_max_length") == 1
    assert artifact.get_string_custom_property(
        "ingest_example_skipped_captions_over_max_length") == example


def test_bom_and_crlf_files_lose_no_caption(tmp_path):
    spec = flickr_fixture(tmp_path / "data")
    for path in (tmp_path / "data").rglob("*.txt"):  # as re-saved by a Windows editor
        text = path.read_bytes().replace(b"\n", b"\r\n")
        path.write_bytes(b"\xef\xbb\xbf" + text)
    _, splits, report = run_executor(tmp_path / "data", spec, tmp_path / "out")
    assert sorted(by_caption(splits["train"])) == ["a.jpg#0", "a.jpg#1", "b.jpg#0"]
    assert sorted(by_caption(splits["eval"])) == ["c.jpg#0", "c.jpg#1"]
    assert report["counts"]["skipped_captions_of_unlisted_images"] == 1  # e.jpg#0 only
    assert report["counts"]["image_feature_rows"] == 5


def test_karpathy_round_trip_with_caption_features_and_restval_policy(tmp_path):
    root = tmp_path / "data"
    images = [
        {"filename": "a.jpg", "split": "train", "sentences": [{"raw": "A dog"}, {"raw": "Dog !"}]},
        {"filename": "b.jpg", "split": "restval", "sentences": [{"raw": "Two cats"}]},
        {"filename": "c.jpg", "split": "val", "sentences": [{"raw": "A red car"}]},
        {"filename": "e.jpg", "split": "test", "sentences": [{"raw": "A test image"}]},
    ]
    root.mkdir()
    (root / "dataset_x.json").write_text(json.dumps({"images": images}), encoding="utf-8")
    _write_features(root, IMAGE_ROWS)
    caption_rows = {"a.jpg#0": [1, 0], "a.jpg#1": [0, 1], "c.jpg#0": [0.5, 0.5], "e.jpg#0": [2, 3]}
    _write_features(root, caption_rows, stem="cap", names_suffix=".ids.txt")
    spec = DatasetSpec(
        format="karpathy", captions=("dataset_x.json",), image_features="features/img.npy",
        image_feature_names="features/img.names.txt", splits=("train", "eval", "test"),
        caption_features="features/cap.npy", caption_feature_ids="features/cap.ids.txt",
        caption_feature_dim=2, restval_split="skip",
    )
    _, splits, report = run_executor(root, spec, tmp_path / "out")
    train = by_caption(splits["train"])
    assert sorted(train) == ["a.jpg#0", "a.jpg#1"]
    assert train["a.jpg#1"][CAPTION_KEY] == "Dog !"
    assert train["a.jpg#1"][CAPTION_FEATURES_KEY] == [0.0, 1.0]
    assert by_caption(splits["test"])["e.jpg#0"][CAPTION_FEATURES_KEY] == [2.0, 3.0]
    assert list(by_caption(splits["eval"])) == ["c.jpg#0"]
    assert report["counts"]["skipped_captions_by_split_policy"] == 1
    assert report["counts"]["examples_test"] == 1


def _coco_file(path, images, annotations):
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"images": [{"id": i, "file_name": n} for i, n in images],
                "annotations": [{"image_id": i, "id": a, "caption": c} for i, a, c in annotations]}
    path.write_text(json.dumps(document), encoding="utf-8")


@pytest.mark.parametrize(
    "split_by", ["file", pytest.param("id_lists", marks=pytest.mark.slow(minutes=1))])
def test_coco_round_trip(tmp_path, split_by):
    root = tmp_path / "data"
    _coco_file(root / "ann" / "captions_train.json", [(1, "a.jpg"), (2, "b.jpg")],
               [(1, 10, "A dog"), (2, 11, "Two cats"), (1, 12, "Dog again")])
    _coco_file(root / "ann" / "captions_val.json", [(3, "c.jpg")], [(3, 13, "A car")])
    _write_features(root, IMAGE_ROWS)
    files = {"captions": ("ann/captions_train.json", "ann/captions_val.json"),
             "image_features": "features/img.npy", "image_feature_names": "features/img.names.txt"}
    if split_by == "file":
        spec = DatasetSpec(format="coco", caption_splits=("train", "eval"), **files)
    else:  # image ids decide: b.jpg (id 2) moves to eval
        _write_lines(root / "train_ids.txt", ["1"])
        _write_lines(root / "eval_ids.txt", ["2", "3"])
        lists = (("train", "train_ids.txt"), ("eval", "eval_ids.txt"))
        spec = DatasetSpec(format="coco", split_lists=lists, **files)
    _, splits, _ = run_executor(root, spec, tmp_path / "out")
    train, evals = by_caption(splits["train"]), by_caption(splits["eval"])
    if split_by == "file":
        assert sorted(train) == ["10", "11", "12"] and sorted(evals) == ["13"]
    else:
        assert sorted(train) == ["10", "12"] and sorted(evals) == ["11", "13"]
    assert evals["13"] == {IMAGE_ID_KEY: "c.jpg", CAPTION_ID_KEY: "13", CAPTION_KEY: "A car",
                           IMAGE_FEATURES_KEY: f16(IMAGE_ROWS["c.jpg"])}


def test_spans_read_the_resolved_span(tmp_path):
    for span, caption in ((1, "Old caption"), (2, "New caption")):
        flickr_fixture(tmp_path / "data" / f"span-{span}",
                       captions=[f"a.jpg#0\t{caption}", "c.jpg#0\tA car"], lists=None)
        _write_lines(tmp_path / "data" / f"span-{span}" / "train.txt", ["a.jpg"])
    spec = DatasetSpec(
        format="flickr", captions=("span-{SPAN}/cap.token.txt",),
        image_features="span-{SPAN}/features/img.npy",
        image_feature_names="span-{SPAN}/features/img.names.txt",
        split_lists=(("train", "span-{SPAN}/train.txt"), ("eval", "span-{SPAN}/eval.txt")),
    )
    _, splits, report = run_executor(tmp_path / "data", spec, tmp_path / "out", span=2)
    assert by_caption(splits["train"])["a.jpg#0"][CAPTION_KEY] == "New caption"
    assert report["span"] == 2


BAD_INPUTS = {
    "duplicate_caption_id": (
        {"captions": [*FLICKR_CAPTIONS[:3], "a.jpg#1\tSame id again", *FLICKR_CAPTIONS[3:]]},
        r"cap\.token\.txt:4: duplicate caption id 'a\.jpg#1' \(also at .*cap\.token\.txt:2\)",
    ),
    "caption_image_without_features": (
        {"rows": {k: v for k, v in IMAGE_ROWS.items() if k != "b.jpg"}},
        r"cap\.token\.txt:3: 'b\.jpg' has no features row in .*img\.names\.txt",
    ),
    "listed_image_without_captions": (
        {"lists": {"train": ["a.jpg", "b.jpg", "z.jpg"], "eval": ["c.jpg"]}},
        r"train\.txt:3: split list names image 'z\.jpg', which has no captions",
    ),
    "listed_image_with_only_overlong_captions": (
        {"captions": [*FLICKR_CAPTIONS, f"d.jpg#0\t{TOO_LONG}"],
         "lists": {"train": ["a.jpg", "b.jpg"], "eval": ["c.jpg", "d.jpg"]}},
        rf"eval\.txt:2: split list names image 'd\.jpg', which has no captions \(none, or only "
        rf"captions over {MAX_CAPTION_CHARS} characters",
    ),
    "image_in_two_split_lists": (
        {"lists": {"train": ["a.jpg", "b.jpg"], "eval": ["c.jpg", "a.jpg"]}},
        r"image 'a\.jpg' is listed again",
    ),
    "nan_features": (
        {"rows": {**IMAGE_ROWS, "b.jpg": [0.0, float("nan"), 1.0]}},
        r"img\.npy: row 1 \('b\.jpg'\) has NaN/Inf",
    ),
    "malformed_line": (
        {"captions": [*FLICKR_CAPTIONS, "c.jpg#2 no tab"]},
        r"cap\.token\.txt:7: malformed line",
    ),
}


# Every rule also has a fast unit test (readers/steps tests); through the executor, one
# whole-dataset rule runs by default (it shows how Beam surfaces the error), the others are slow.
@pytest.mark.parametrize(
    "case",
    [c if c == "duplicate_caption_id" else pytest.param(c, marks=pytest.mark.slow(minutes=1))
     for c in sorted(BAD_INPUTS)],
)
def test_bad_input_fails_naming_file_line_and_rule(tmp_path, case):
    fixture, message = BAD_INPUTS[case]
    spec = flickr_fixture(tmp_path / "data", **fixture)
    with pytest.raises(Exception, match=message) as caught:  # Beam may wrap the IngestError
        run_executor(tmp_path / "data", spec, tmp_path / "out")
    assert "IngestError" in repr(caught.value) or isinstance(caught.value, IngestError)


def _features_artifact(folder, rows, name="feats"):
    """An ImageFeatures artifact holding ``rows`` as the featurizer writes them."""
    from components.artifacts import ImageFeatures

    _write_features(folder.parent, rows, stem=name)
    artifact = ImageFeatures()
    artifact.uri = str(folder.parent / "features")
    artifact.set_string_custom_property("features_name", name)
    return artifact


def test_image_features_from_the_input_artifact(tmp_path):
    spec = flickr_fixture(tmp_path / "data")
    rows = {name: [float(i), 0.0, 1.0] for i, name in enumerate(IMAGE_ROWS)}
    artifact = _features_artifact(tmp_path / "featurizer" / "x", rows)
    no_files = dataclasses.replace(spec, image_features="", image_feature_names="")
    examples, report = local.run_executor(str(tmp_path / "data"), no_files,
                                          str(tmp_path / "out"), image_features=artifact)
    evals = by_caption(read_splits(tmp_path / "out", spec.splits)["eval"])
    assert evals["c.jpg#0"][IMAGE_FEATURES_KEY] == f16(rows["c.jpg"])  # not the dataset's own
    assert report["counts"]["image_feature_rows"] == 5


def test_image_features_from_nowhere_or_twice_are_errors(tmp_path):
    spec = flickr_fixture(tmp_path / "data")
    artifact = _features_artifact(tmp_path / "featurizer" / "x", IMAGE_ROWS)
    with pytest.raises(ValueError, match="image features given twice"):
        local.run_executor(str(tmp_path / "data"), spec, str(tmp_path / "o1"),
                           image_features=artifact)
    no_files = dataclasses.replace(spec, image_features="", image_feature_names="")
    with pytest.raises(ValueError, match="names no image_features file and no 'image_features' "
                                         "input artifact"):
        local.run_executor(str(tmp_path / "data"), no_files, str(tmp_path / "o2"))
    artifact.set_string_custom_property("features_name", "")
    with pytest.raises(ValueError, match="has no 'features_name' custom property"):
        local.run_executor(str(tmp_path / "data"), no_files, str(tmp_path / "o3"),
                           image_features=artifact)
