"""The train, dev and test splits of the paper table, through the project's real Transform.

DATA (``--data``) gives the train split (``Flickr_8k.trainImages.txt``) and the dev split used
for epoch selection (``Flickr_8k.devImages.txt``); a test directory (``--test-data``) has the
same layout restricted to its own images, with one split list (``Flickr_8k.testImages.txt``,
else its only ``Flickr_8k.*Images.txt``). Raw rows carry the MobileNetV2 image features and the
precomputed MiniLM caption features; ``preprocessing_fn`` is analyzed on the train split only and
applied to every split (``benchmarks.train_quality.transform_flickr8k``), so both the token
inputs and the caption features are there, scaled with train statistics alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

import numpy as np
import tensorflow_transform as tft

from benchmarks import harness, train_quality
from serving import rouge
from trainer import features, preprocessing
from trainer.inputs import data

TRAIN_LIST = "Flickr_8k.trainImages.txt"
DEV_LIST = "Flickr_8k.devImages.txt"
TEST_LIST = "Flickr_8k.testImages.txt"
TOKEN_FILE = "Flickr8k.token.txt"


@dataclasses.dataclass(frozen=True)
class Splits:
    """The three splits in memory, and what the test metrics need besides the embeddings.

    Attributes:
        train: training tables.
        dev: epoch-selection tables (DATA's dev split).
        test: reporting tables (``dev`` itself when no test directory is given).
        test_captions: [N_txt] caption text of each ``test`` caption row.
        vocab_size: token-tower Embedding size (``preprocessing.token_vocab_size``).

    """

    train: data.SplitTables
    dev: data.SplitTables
    test: data.SplitTables
    test_captions: list[str]
    vocab_size: int


def test_list(folder: pathlib.Path) -> pathlib.Path:
    """The split list of a test directory: ``TEST_LIST``, else its only ``Flickr_8k.*Images.txt``.

    Raises:
        ValueError: no list, or several lists and none of them ``TEST_LIST``.

    """
    if (folder / TEST_LIST).is_file():
        return folder / TEST_LIST
    lists = sorted(folder.glob("Flickr_8k.*Images.txt"))
    if len(lists) != 1:
        raise ValueError(f"{folder}: expected {TEST_LIST} or exactly one Flickr_8k.*Images.txt "
                         f"split list, found {[path.name for path in lists]}")
    return lists[0]


def split_rows(folder: pathlib.Path, list_path: pathlib.Path) -> list[dict]:
    """Raw feature dicts (ids, caption, image and caption features) of one split list.

    Captions empty after normalization are skipped and counted by ``train_quality``.

    Raises:
        ValueError: naming the file, for a listed image without features or captions, or a
            caption without a row in ``features/minilm_l6_v2.npy``.

    """
    images, image_names = harness.feature_matrix(folder, "mobilenet_v2", "names.txt")
    captions, caption_ids = harness.feature_matrix(folder, "minilm_l6_v2", "ids.txt")
    image_row = {name: row for row, name in enumerate(image_names)}
    caption_row = {name: row for row, name in enumerate(caption_ids)}
    texts = train_quality.read_captions(folder)
    rows = []
    for line_no, image in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
        image = image.strip()
        if not image:
            continue
        if image not in image_row or image not in texts:
            raise ValueError(f"{list_path}:{line_no}: image {image!r} has no row in "
                             f"features/mobilenet_v2.names.txt or no caption in {TOKEN_FILE}")
        for caption_id, caption in texts[image]:
            if caption_id not in caption_row:
                raise ValueError(f"{folder / 'features' / 'minilm_l6_v2.ids.txt'}: no row for "
                                 f"caption {caption_id!r}")
            rows.append({features.IMAGE_ID_KEY: image.encode(),
                         features.CAPTION_ID_KEY: caption_id.encode(),
                         features.CAPTION_KEY: caption.encode(),
                         features.IMAGE_FEATURES_KEY: images[image_row[image]],
                         features.CAPTION_FEATURES_KEY: captions[caption_row[caption_id]]})
    return rows


def _fingerprint(paths: list[pathlib.Path], transform_config: dict) -> str:
    """The Transform cache key: the input files' names, sizes and times, and the settings."""
    digest = hashlib.sha256(json.dumps(transform_config, sort_keys=True).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _inputs(folder: pathlib.Path, lists: list[pathlib.Path]) -> list[pathlib.Path]:
    feature_dir = folder / "features"
    return [folder / TOKEN_FILE, *lists, *(feature_dir / name for name in (
        "mobilenet_v2.npy", "mobilenet_v2.names.txt", "minilm_l6_v2.npy", "minilm_l6_v2.ids.txt"))]


def load_splits(data_dir: pathlib.Path, test_dir: pathlib.Path | None,
                work_dir: pathlib.Path, text_keys: tuple[str, ...],
                transform_config: dict | None = None) -> Splits:
    """Transforms (or reuses the cached Transform output of) the splits and reads them.

    Args:
        data_dir: DATA: train and dev splits.
        test_dir: the test directory, or None to report on DATA's dev split.
        work_dir: the Transform output is cached under ``work_dir/transformed-<key>``, the key
            a hash of the input files' paths, sizes and times and of ``transform_config``.
        text_keys: transformed features the text tower reads.
        transform_config: ``preprocessing_fn``'s ``custom_config`` (None: its defaults).

    Returns:
        The ``Splits``.

    """
    lists = [data_dir / TRAIN_LIST, data_dir / DEV_LIST]
    inputs = _inputs(data_dir, lists)
    if test_dir is not None:
        inputs += _inputs(test_dir, [test_list(test_dir)])
    splits = {"train": split_rows(data_dir, lists[0]), "eval": split_rows(data_dir, lists[1])}
    if test_dir is not None:
        splits["test"] = split_rows(test_dir, test_list(test_dir))
    _check_dims(splits)
    key = _fingerprint(inputs, transform_config or {})
    out = train_quality.transform_flickr8k(splits, work_dir / f"transformed-{key}",
                                           transform_config)
    transform = tft.TFTransformOutput(str(out / "transform"))
    tables = {name: data.load_split(str(out / name / "*"), transform, text_keys)
              for name in splits}
    text_of = {row[features.CAPTION_ID_KEY]: row[features.CAPTION_KEY].decode()
               for row in splits["test" if test_dir is not None else "eval"]}
    test = tables.get("test", tables["eval"])
    return Splits(tables["train"], tables["eval"], test,
                  [text_of[caption_id] for caption_id in test.caption_ids],
                  preprocessing.token_vocab_size(transform))


def _check_dims(splits: dict[str, list[dict]]) -> None:
    """Every split has rows, with the train split's feature sizes (one Transform for all)."""
    empty = [name for name, rows in splits.items() if not rows]
    if empty:
        raise ValueError(f"splits {empty} have no captions")
    for key in (features.IMAGE_FEATURES_KEY, features.CAPTION_FEATURES_KEY):
        expected = len(splits["train"][0][key])
        for name, rows in splits.items():
            if len(rows[0][key]) != expected:
                raise ValueError(f"{name} split: {key} has {len(rows[0][key])} values per row, "
                                 f"the train split {expected}")


def rouge_relevance(split: data.SplitTables, captions: list[str]) -> np.ndarray:
    """ROUGE-L relevance [N_txt, N_img] of the split's images to its captions (TERAN's R).

    Rows follow the split's caption rows, columns its image rows; an image's references are its
    own captions.
    """
    scorer = rouge.RelevanceScorer(captions, split.text_image_index, len(split.image_features))
    return scorer.score(captions)
