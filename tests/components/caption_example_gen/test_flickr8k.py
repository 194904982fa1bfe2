"""Acceptance on the real Flickr8k data (../shared) and Beam multi-processing equality."""

import numpy as np
import pytest

from components.caption_example_gen import detect
from components.caption_example_gen.feature_table import FeatureTable
from components.caption_example_gen.readers import read_flickr_tokens, read_split_list
from components.caption_example_gen.synthetic import SyntheticConfig, write_synthetic_dataset
from tests.components.caption_example_gen.test_executor import by_caption, run_executor
from trainer.features import CAPTION_KEY, IMAGE_FEATURES_KEY, IMAGE_ID_KEY

SPOT_CAPTION_ID = "1000268201_693b08cb0e.jpg#2"


def _source_line(path, caption_id):
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, caption = line.partition("\t")
        if key == caption_id:
            return caption
    raise AssertionError(f"{caption_id} not in {path}")


def _source_row(flickr8k_dir, image_id):
    names = (flickr8k_dir / "features" / "mobilenet_v2.names.txt").read_text().splitlines()
    matrix = np.load(flickr8k_dir / "features" / "mobilenet_v2.npy")
    return matrix[names.index(image_id)].astype(np.float32)


def test_detect_and_read_flickr8k_counts(flickr8k_dir):
    spec = detect(str(flickr8k_dir))
    assert (spec.format, spec.splits, spec.image_feature_dim) == ("flickr", ("train", "eval"), 1280)
    assert spec.image_features == "features/mobilenet_v2.npy"
    records = list(read_flickr_tokens(str(flickr8k_dir / spec.captions[0])))
    split_of = {e.key: e.split for s, p in spec.split_lists
                for e in read_split_list(str(flickr8k_dir / p), s)}
    table = FeatureTable(str(flickr8k_dir / spec.image_features),
                         str(flickr8k_dir / spec.image_feature_names), 1280)
    per_split = {"train": 0, "eval": 0}
    images = {"train": set(), "eval": set()}
    for record in records:
        per_split[split_of[record.image_id]] += 1
        images[split_of[record.image_id]].add(record.image_id)
        assert record.image_id in table.index
    assert per_split == {"train": 30000, "eval": 5000}
    assert {k: len(v) for k, v in images.items()} == {"train": 6000, "eval": 1000}
    spot = next(r for r in records if r.caption_id == SPOT_CAPTION_ID)
    assert spot.caption == _source_line(flickr8k_dir / "Flickr8k.token.txt", SPOT_CAPTION_ID)
    expected = _source_row(flickr8k_dir, spot.image_id)
    np.testing.assert_array_equal(table.row(spot.image_id), expected)


@pytest.mark.slow(minutes=2)
@pytest.mark.e2e
def test_executor_on_flickr8k(flickr8k_dir, tmp_path):
    spec = detect(str(flickr8k_dir))
    _, splits, report = run_executor(flickr8k_dir, spec, tmp_path / "out")
    assert {s: len(e) for s, e in splits.items()} == {"train": 30000, "eval": 5000}
    counts = report["counts"]
    assert (counts["images_train"], counts["images_eval"]) == (6000, 1000)
    train = by_caption(splits["train"])
    assert all(len(e[IMAGE_FEATURES_KEY]) == 1280 for e in train.values())
    spot = train[SPOT_CAPTION_ID]
    assert spot[CAPTION_KEY] == _source_line(flickr8k_dir / "Flickr8k.token.txt", SPOT_CAPTION_ID)
    expected = _source_row(flickr8k_dir, spot[IMAGE_ID_KEY])
    np.testing.assert_array_equal(np.array(spot[IMAGE_FEATURES_KEY], np.float32), expected)


@pytest.mark.slow(minutes=2)
@pytest.mark.e2e
def test_multi_processing_with_two_workers_gives_the_same_output(tmp_path):
    spec = write_synthetic_dataset(str(tmp_path / "data"), SyntheticConfig(num_images=200))
    _, single, _ = run_executor(tmp_path / "data", spec, tmp_path / "single")
    multi_args = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    _, multi, report = run_executor(
        tmp_path / "data", spec, tmp_path / "multi", beam_args=multi_args
    )
    for split in spec.splits:
        assert len(multi[split]) == len(single[split])
        assert by_caption(multi[split]) == by_caption(single[split])
    assert report["counts"]["examples_train"] + report["counts"]["examples_eval"] == 1000
