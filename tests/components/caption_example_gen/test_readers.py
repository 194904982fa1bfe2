"""Readers, feature tables, DatasetSpec and layout detection of the caption ExampleGen (no Beam)."""

import json

import numpy as np
import pytest

from components.caption_example_gen import detect
from components.caption_example_gen.feature_table import FeatureTable
from components.caption_example_gen.readers import (
    SKIP_SPLIT,
    read_coco,
    read_flickr_tokens,
    read_karpathy,
    read_split_list,
)
from components.caption_example_gen.records import CaptionRecord, IngestError
from components.caption_example_gen.report import count_feature_rows
from components.caption_example_gen.spec import DatasetSpec

KARPATHY_MAP = {"train": "train", "val": "eval", "test": "test", "restval": SKIP_SPLIT}


def _write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


# --- Flickr token files -------------------------------------------------------------------------


def test_flickr_tokens_round_trip(tmp_path):
    text = "a.jpg#0\tA dog runs .\na.jpg#1\t  Two  dogs \r\nb.jpg#0\tCafé\n"
    path = _write(tmp_path / "t.token.txt", text)
    records = list(read_flickr_tokens(path))
    assert records == [
        CaptionRecord("a.jpg", "a.jpg#0", "A dog runs .", "", "a.jpg", f"{path}:1"),
        CaptionRecord("a.jpg", "a.jpg#1", "Two  dogs", "", "a.jpg", f"{path}:2"),
        CaptionRecord("b.jpg", "b.jpg#0", "Café", "", "b.jpg", f"{path}:3"),
    ]


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("a.jpg#1 no tab here", "malformed line"),
        ("a.jpg\tcaption without #N", "malformed caption id"),
        ("a.jpg#x\tcaption", "malformed caption id"),
        ("a.jpg#1\t", "empty or whitespace-only caption"),
        ("a.jpg#1\t \t  ", "empty or whitespace-only caption"),
        ("a.jpg#1\t... !!", "no tokens after normalization"),
        ("", "malformed line"),
    ],
)
def test_flickr_tokens_bad_line_names_file_line_and_rule(tmp_path, line, rule):
    path = _write(tmp_path / "t.token.txt", f"a.jpg#0\tfine caption\n{line}\n")
    with pytest.raises(IngestError, match=rf"t\.token\.txt:2: .*{rule}"):
        list(read_flickr_tokens(path))


def test_flickr_tokens_invalid_utf8_names_line_and_byte(tmp_path):
    path = _write(tmp_path / "t.token.txt", b"a.jpg#0\tok\na.jpg#1\tbad \xff byte\n")
    with pytest.raises(IngestError, match=r"t\.token\.txt:2: invalid UTF-8 at byte 12"):
        list(read_flickr_tokens(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(IngestError, match=r"nope\.txt: caption file not found"):
        list(read_flickr_tokens(str(tmp_path / "nope.txt")))
    with pytest.raises(IngestError, match=r"list\.txt: split list for 'eval' not found"):
        list(read_split_list(str(tmp_path / "list.txt"), "eval"))


def test_split_list_skips_blank_lines_keeps_sources(tmp_path):
    path = _write(tmp_path / "list.txt", "a.jpg\n\n b.jpg \n")
    entries = list(read_split_list(path, "train"))
    assert [(e.key, e.split, e.source) for e in entries] == [
        ("a.jpg", "train", f"{path}:1"),
        ("b.jpg", "train", f"{path}:3"),
    ]


# --- Karpathy JSON ------------------------------------------------------------------------------


def _karpathy(images):
    return json.dumps({"images": images, "dataset": "flickr8k"}, indent=1)


def _kimage(name, split, *captions):
    sentences = [{"raw": c, "tokens": c.split(), "sentid": i} for i, c in enumerate(captions)]
    return {"filename": name, "imgid": 0, "split": split, "sentids": [], "sentences": sentences}


def test_karpathy_round_trip_maps_splits(tmp_path):
    images = [_kimage("a.jpg", "train", "A cat ."), _kimage("b.jpg", "val", "B", "C d"),
              _kimage("c.jpg", "restval", "E f")]
    path = _write(tmp_path / "dataset_x.json", _karpathy(images))
    records = read_karpathy(path, KARPATHY_MAP)
    got = [(r.image_id, r.caption_id, r.caption, r.split) for r in records]
    assert got == [
        ("a.jpg", "a.jpg#0", "A cat .", "train"),
        ("b.jpg", "b.jpg#0", "B", "eval"),
        ("b.jpg", "b.jpg#1", "C d", "eval"),
        ("c.jpg", "c.jpg#0", "E f", SKIP_SPLIT),
    ]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (_kimage("a.jpg", "dev", "x"), r"images\[1\]: unknown split name 'dev'"),
        ({"split": "train", "sentences": []}, r"images\[1\]: missing field 'filename'"),
        (_kimage("a.jpg", "train", "   "), r"images\[1\]\.sentences\[0\]: empty or whitespace"),
        ({"filename": "a.jpg", "split": "train", "sentences": [{"raw": 5}]},
         r"images\[1\]\.sentences\[0\]: field 'raw' must be str"),
    ],
)
def test_karpathy_bad_record_names_record_and_rule(tmp_path, image, message):
    path = _write(tmp_path / "dataset_x.json", _karpathy([_kimage("z.jpg", "train", "ok"), image]))
    with pytest.raises(IngestError, match=message):
        list(read_karpathy(path, KARPATHY_MAP))


def test_json_invalid_utf8_and_syntax_name_the_line(tmp_path):
    bad = _write(tmp_path / "dataset_a.json", b'{"images": [\n{"filename": "\xc3("}]}')
    with pytest.raises(IngestError, match=r"dataset_a\.json:2: invalid UTF-8"):
        list(read_karpathy(bad, KARPATHY_MAP))
    broken = _write(tmp_path / "dataset_b.json", '{"images": [\n\n{"filename": }]}')
    with pytest.raises(IngestError, match=r"dataset_b\.json:3: malformed JSON"):
        list(read_karpathy(broken, KARPATHY_MAP))


# --- COCO captions JSON -------------------------------------------------------------------------


def _coco(images, annotations):
    return json.dumps({"info": {}, "images": images, "annotations": annotations})


def test_coco_round_trip(tmp_path):
    images = [{"id": 7, "file_name": "COCO_7.jpg"}, {"id": 9, "file_name": "COCO_9.jpg"}]
    annotations = [{"image_id": 9, "id": 100, "caption": "A bus ."},
                   {"image_id": 7, "id": 101, "caption": " Two cats "}]
    path = _write(tmp_path / "captions_val2014.json", _coco(images, annotations))
    got = [(r.image_id, r.caption_id, r.caption, r.split, r.list_key, r.source)
           for r in read_coco(path, "eval")]
    assert got == [
        ("COCO_9.jpg", "100", "A bus .", "eval", "9", f"{path}: annotations[0]"),
        ("COCO_7.jpg", "101", "Two cats", "eval", "7", f"{path}: annotations[1]"),
    ]


@pytest.mark.parametrize(
    ("images", "annotations", "message"),
    [
        ([{"id": 1, "file_name": "a"}], [{"image_id": 2, "id": 5, "caption": "x"}],
         r"annotations\[0\]: image_id 2 is not among the file's images"),
        ([{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}], [],
         r"images\[1\]: duplicate image id 1"),
        ([{"id": 1, "file_name": "a"}], [{"image_id": 1, "caption": "x"}],
         r"annotations\[0\]: missing field 'id'"),
    ],
)
def test_coco_bad_record(tmp_path, images, annotations, message):
    path = _write(tmp_path / "captions_train.json", _coco(images, annotations))
    with pytest.raises(IngestError, match=message):
        list(read_coco(path, "train"))


# --- Feature tables -----------------------------------------------------------------------------


def _table_files(tmp_path, matrix, names):
    np.save(tmp_path / "f.npy", matrix)
    _write(tmp_path / "f.names.txt", "".join(f"{n}\n" for n in names))
    return str(tmp_path / "f.npy"), str(tmp_path / "f.names.txt")


def test_feature_table_rows_are_float32_of_the_stored_values(tmp_path):
    matrix = np.array([[0.1, 2.5], [3.0, -1.0]], dtype=np.float16)
    table = FeatureTable(*_table_files(tmp_path, matrix, ["x.jpg", "y.jpg"]), 2)
    row = table.row("y.jpg")
    assert row.dtype == np.float32 and row.tolist() == [3.0, -1.0]
    assert table.row("x.jpg").tolist() == [float(np.float16(0.1)), 2.5]
    assert table.row("z.jpg") is None and table.dim == 2


@pytest.mark.parametrize(
    ("matrix", "names", "dim", "message"),
    [
        (np.zeros((2, 3), np.float16), ["a", "b"], 4, r"f\.npy: features have width 3, expected 4"),
        (np.array([[0, np.nan], [1, 1]], np.float32), ["a", "b"], 0, r"row 0 \('a'\) has NaN/Inf"),
        (np.array([[0, 1], [np.inf, 1]], np.float16), ["a", "b"], 0, r"row 1 \('b'\) has NaN/Inf"),
        (np.zeros((2, 3), np.float16), ["a"], 0, r"f\.names\.txt: 1 row names for 2 rows"),
        (np.zeros((2, 3), np.float16), ["a", "a"], 0, r"f\.names\.txt:2: duplicate row name 'a'"),
        (np.zeros((3,), np.float16), ["a", "b", "c"], 0, r"2-D float matrix"),
        (np.zeros((2, 3), np.int32), ["a", "b"], 0, r"2-D float matrix"),
    ],
)
def test_feature_table_rejects_bad_features(tmp_path, matrix, names, dim, message):
    with pytest.raises(IngestError, match=message):
        FeatureTable(*_table_files(tmp_path, matrix, names), dim)


# --- UTF-8 byte-order mark and CRLF line ends (Windows editors) ---------------------------------

BOM = b"\xef\xbb\xbf"


def _windows(text: str) -> bytes:
    """``text`` as a Windows editor saves it: a leading UTF-8 BOM and CRLF line ends."""
    return BOM + text.replace("\n", "\r\n").encode("utf-8")


def _flickr_ids(path):
    return [(r.image_id, r.caption_id, r.caption) for r in read_flickr_tokens(path)]


def _list_keys(path):
    return [(e.key, e.source[-2:]) for e in read_split_list(path, "train")]


def _karpathy_ids(path):
    return [(r.image_id, r.caption_id, r.caption) for r in read_karpathy(path, KARPATHY_MAP)]


def _coco_ids(path):
    return [(r.image_id, r.caption_id, r.caption) for r in read_coco(path, "eval")]


def _table_rows(path):
    np.save(f"{path}.npy", np.eye(2, dtype=np.float32))
    table = FeatureTable(f"{path}.npy", path, 2)
    return [table.row(n).tolist() for n in ("a.jpg", "b.jpg")] + [count_feature_rows(path)]


@pytest.mark.parametrize(
    ("read", "text", "expected"),
    [
        (_flickr_ids, "a.jpg#0\tA dog .\nb.jpg#0\tA cat .\n",
         [("a.jpg", "a.jpg#0", "A dog ."), ("b.jpg", "b.jpg#0", "A cat .")]),
        (_list_keys, "a.jpg\nb.jpg\n", [("a.jpg", ":1"), ("b.jpg", ":2")]),
        (_karpathy_ids, _karpathy([_kimage("a.jpg", "train", "A cat .")]),
         [("a.jpg", "a.jpg#0", "A cat .")]),
        (_coco_ids, _coco([{"id": 7, "file_name": "c.jpg"}],
                          [{"image_id": 7, "id": 1, "caption": "A bus ."}]),
         [("c.jpg", "1", "A bus .")]),
        (_table_rows, "a.jpg\nb.jpg\n", [[1.0, 0.0], [0.0, 1.0], 2]),
    ],
    ids=["token file", "split list", "karpathy json", "coco json", "feature names"],
)
def test_readers_strip_a_leading_bom_and_accept_crlf(tmp_path, read, text, expected):
    plain = read(_write(tmp_path / "plain.txt", text))
    windows = read(_write(tmp_path / "windows.txt", _windows(text)))
    assert plain == expected and windows == expected


# --- DatasetSpec and detect ---------------------------------------------------------------------


def _flickr_spec(**changes):
    values = {"format": "flickr", "captions": ["c.token.txt"], "image_features": "f.npy",
              "image_feature_names": "f.names.txt", "split_lists": [["train", "t"], ["eval", "e"]]}
    values.update(changes)
    return DatasetSpec.from_dict(values)


def test_spec_round_trips_through_custom_config():
    spec = _flickr_spec(image_feature_dim=8, fingerprint="abc")
    config = spec.to_custom_config()
    assert json.loads(json.dumps(config)) == config
    assert DatasetSpec.from_dict(config) == spec
    assert spec.split_lists == (("train", "t"), ("eval", "e"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
        ({"format": "csv"}, r"format 'csv' is not one of"),
        ({"split_lists": []}, r"format 'flickr' needs split_lists"),
        ({"splits": ["train"]}, r"must hold train and eval"),
        ({"split_lists": [["dev", "d"], ["train", "t"]]}, r"split 'dev' is not among splits"),
        ({"unlisted_images": "ignore"}, r"unlisted_images must be one of"),
        ({"caption_features": "c.npy"}, r"caption_features and caption_feature_ids go together"),
    ],
)
def test_spec_rejects_bad_values_naming_them(changes, message):
    with pytest.raises(ValueError, match=message):
        _flickr_spec(**changes)


def test_input_pattern_covers_every_caption_file():
    one = _flickr_spec(captions=["span-{SPAN}/c.token.txt"])
    assert one.input_pattern() == "span-{SPAN}/c.token.txt"
    coco = DatasetSpec(format="coco", captions=("ann/captions_train.json", "ann/captions_val.json"),
                       caption_splits=("train", "eval"), image_features="f.npy",
                       image_feature_names="f.names.txt")
    assert coco.input_pattern() == "ann/*.json"


def _features_dir(root, dim=4):
    (root / "features").mkdir(parents=True)
    np.save(root / "features" / "img.npy", np.zeros((2, dim), np.float16))
    _write(root / "features" / "img.names.txt", "a.jpg\nb.jpg\n")
    np.save(root / "features" / "cap.npy", np.zeros((2, 3), np.float16))
    _write(root / "features" / "cap.ids.txt", "a.jpg#0\nb.jpg#0\n")


def test_detect_flickr_layout_with_spans(tmp_path):
    for span in ("1", "12"):
        root = tmp_path / f"span-{span}"
        _features_dir(root, dim=int(span) + 1)
        for name in ("Flickr8k.token.txt", "Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt"):
            _write(root / name, "")
    spec = detect(str(tmp_path), include_caption_features=True)
    assert spec.format == "flickr" and spec.splits == ("train", "eval")
    assert spec.captions == ("span-{SPAN}/Flickr8k.token.txt",)
    assert spec.split_lists == (("train", "span-{SPAN}/Flickr_8k.trainImages.txt"),
                                ("eval", "span-{SPAN}/Flickr_8k.devImages.txt"))
    assert spec.image_features == "span-{SPAN}/features/img.npy"
    assert spec.image_feature_dim == 13  # read from the newest span
    assert spec.caption_features == "span-{SPAN}/features/cap.npy" and spec.caption_feature_dim == 3
    assert detect(str(tmp_path)).caption_features == ""


def test_detect_karpathy_and_coco(tmp_path):
    karpathy = tmp_path / "k"
    _features_dir(karpathy)
    _write(karpathy / "dataset_flickr30k.json", "{}")
    spec = detect(str(karpathy), restval_split="skip")
    assert (spec.format, spec.captions, spec.splits, spec.restval_split) == (
        "karpathy", ("dataset_flickr30k.json",), ("train", "eval", "test"), "skip")
    coco = tmp_path / "c"
    _features_dir(coco)
    (coco / "annotations").mkdir()
    _write(coco / "annotations" / "captions_train2014.json", "{}")
    _write(coco / "annotations" / "captions_val2014.json", "{}")
    spec = detect(str(coco))
    assert spec.format == "coco" and spec.splits == ("train", "eval")
    assert spec.captions == ("annotations/captions_train2014.json",
                             "annotations/captions_val2014.json")
    assert spec.caption_splits == ("train", "eval")


def test_detect_reports_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="dataset folder not found"):
        detect(str(tmp_path / "absent"))
    _write(tmp_path / "notes.txt", "")
    with pytest.raises(ValueError, match="no caption dataset found"):
        detect(str(tmp_path))
    _write(tmp_path / "dataset_coco.json", "{}")
    with pytest.raises(ValueError, match="no image features"):
        detect(str(tmp_path))
