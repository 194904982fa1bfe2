"""``detect(data_dir)``: recognizes a caption dataset folder's layout and returns its DatasetSpec.

Recognized (first match wins): a Flickr token file (``*.token.txt`` / ``*.token``) with split
lists (``*trainImages.txt``, ``*devImages.txt``, ``*testImages.txt``); a Karpathy split JSON
(``dataset_*.json``); COCO captions JSON (``captions_*.json``, also under ``annotations/``; the
split is read from each file name). Image features: ``features/<name>.npy`` with
``features/<name>.names.txt``; caption features: ``<name>.npy`` with ``<name>.ids.txt``. A folder
of ``span-<N>`` sub-folders is detected from its newest span and described with ``span-{SPAN}/``
paths, so that TFX ingests the newest span.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from components.caption_example_gen.spec import DatasetSpec
from trainer.features import EVAL_SPLIT, TEST_SPLIT, TRAIN_SPLIT

_SPAN_DIR = re.compile(r"^span-(\d+)$")
_FLICKR_LISTS = (
    (TRAIN_SPLIT, "trainImages.txt"),
    (EVAL_SPLIT, "devImages.txt"),
    (TEST_SPLIT, "testImages.txt"),
)
_COCO_SPLITS = ((TRAIN_SPLIT, "train"), (EVAL_SPLIT, "val"), (TEST_SPLIT, "test"))


def detect(data_dir: str, include_caption_features: bool = False, **overrides: Any) -> DatasetSpec:
    """Describes the caption dataset in ``data_dir``.

    Args:
      data_dir: a local dataset folder (the ExampleGen's ``input_base``).
      include_caption_features: also ingest caption features when the folder has them.
      **overrides: DatasetSpec fields that replace what detection found (with ``image_features``
        given, the folder needs no features of its own, e.g. when images are featurized first).

    Returns:
      The DatasetSpec, with ``image_feature_dim`` read from the ``.npy`` header.

    Raises:
      ValueError: naming the folder and what is missing.

    """
    prefix = _newest_span_prefix(data_dir)
    root = os.path.join(data_dir, prefix.replace("{SPAN}", _newest_span(data_dir) or ""))
    files = _listing(root)
    layout = _flickr(files) or _karpathy(files) or _coco(files)
    if layout is None:
        raise ValueError(
            f"{root}: no caption dataset found (expected a *.token.txt with split lists, a "
            f"dataset_*.json or captions_*.json); found {sorted(files)[:20]}"
        )
    given = "image_features" in overrides
    layout.update(_features(root, files, include_caption_features, required=not given))
    values = _prefixed(layout, prefix)
    values.update(overrides)
    if given and "image_feature_dim" not in overrides:
        values["image_feature_dim"] = _width_if_present(data_dir, overrides["image_features"])
    return DatasetSpec.from_dict(values)


def _newest_span(data_dir: str) -> str | None:
    spans = [m.group(1) for m in map(_SPAN_DIR.match, os.listdir(data_dir)) if m]
    return max(spans, key=int) if spans else None


def _newest_span_prefix(data_dir: str) -> str:
    if not os.path.isdir(data_dir):
        raise ValueError(f"{data_dir}: dataset folder not found")
    return "span-{SPAN}/" if _newest_span(data_dir) else ""


def _listing(root: str) -> list[str]:
    found = []
    for folder, _, names in os.walk(root):
        rel = os.path.relpath(folder, root)
        if rel.count(os.sep) < 2 and "images" not in rel.split(os.sep):
            found += [os.path.normpath(os.path.join(rel, n)).replace(os.sep, "/") for n in names]
    return sorted(found)


def _flickr(files: list[str]) -> dict[str, Any] | None:
    tokens = [f for f in files if f.endswith((".token.txt", ".token")) and "/" not in f]
    lists = [(split, f) for split, end in _FLICKR_LISTS for f in files if f.endswith(end)]
    if not tokens or not lists:
        return None
    splits = tuple(split for split, _ in lists)
    return {"format": "flickr", "captions": tokens[:1], "split_lists": lists, "splits": splits}


def _karpathy(files: list[str]) -> dict[str, Any] | None:
    found = [f for f in files if os.path.basename(f).startswith("dataset_") and f.endswith(".json")]
    if not found:
        return None
    splits = (TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT)
    return {"format": "karpathy", "captions": found[:1], "splits": splits}


def _coco(files: list[str]) -> dict[str, Any] | None:
    pairs = []
    for f in files:
        name = os.path.basename(f)
        if name.startswith("captions_") and name.endswith(".json"):
            pairs += [(split, f) for split, word in _COCO_SPLITS if word in name[len("captions_"):]]
    if not pairs:
        return None
    splits = tuple(s for s in (TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT) if s in {p[0] for p in pairs})
    return {
        "format": "coco",
        "captions": [f for _, f in pairs],
        "caption_splits": [s for s, _ in pairs],
        "splits": splits,
    }


def _features(root: str, files: list[str], include_captions: bool, required: bool) -> dict:
    found: dict[str, Any] = {}
    for matrix in (f for f in files if f.endswith(".npy")):
        stem = matrix[: -len(".npy")]
        if f"{stem}.names.txt" in files and "image_features" not in found:
            found.update(image_features=matrix, image_feature_names=f"{stem}.names.txt")
            found["image_feature_dim"] = _width(os.path.join(root, matrix))
        elif f"{stem}.ids.txt" in files and include_captions and "caption_features" not in found:
            found.update(caption_features=matrix, caption_feature_ids=f"{stem}.ids.txt")
            found["caption_feature_dim"] = _width(os.path.join(root, matrix))
    if required and "image_features" not in found:
        raise ValueError(f"{root}: no image features (<name>.npy + <name>.names.txt) found")
    return found


def _width(path: str) -> int:
    shape = np.load(path, mmap_mode="r").shape
    if len(shape) != 2:
        raise ValueError(f"{path}: features must be a 2-D matrix [N, D], got shape {shape}")
    return int(shape[1])


def _width_if_present(data_dir: str, rel: str) -> int:
    """The width of an overriding features file when it exists already (0: not known yet)."""
    path = os.path.join(data_dir, rel)  # an absolute ``rel`` stays as it is
    return _width(path) if "{SPAN}" not in rel and os.path.isfile(path) else 0


def _prefixed(layout: dict[str, Any], prefix: str) -> dict[str, Any]:
    if not prefix:
        return layout
    values = dict(layout)
    values["captions"] = [prefix + p for p in layout["captions"]]
    if "split_lists" in layout:
        values["split_lists"] = [(s, prefix + p) for s, p in layout["split_lists"]]
    for key in ("image_features", "image_feature_names", "caption_features", "caption_feature_ids"):
        if key in layout:
            values[key] = prefix + layout[key]
    return values

