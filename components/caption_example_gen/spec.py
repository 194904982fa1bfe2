"""``DatasetSpec``: what a caption dataset folder holds and how to ingest it (all exec properties).

Every path is relative to the ExampleGen's ``input_base`` and may contain TFX's ``{SPAN}`` (and
``{VERSION}``) specs, e.g. ``span-{SPAN}/Flickr8k.token.txt``, so that a new data drop is a new
span. Everything lives in the component's ``custom_config``, so changing any option busts TFX's
cache.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping
from typing import Any

from components.caption_example_gen.readers import FORMATS, KARPATHY_SPLITS, SKIP_SPLIT
from trainer.features import EVAL_SPLIT, SPLITS, TEST_SPLIT, TRAIN_SPLIT

POLICIES = ("skip", "error")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A caption dataset: format, files (relative to ``input_base``) and ingest policies.

    Attributes:
      format: ``flickr`` (token file + split lists), ``karpathy`` (split JSON) or ``coco``
        (captions JSON; split per file or from lists of image ids).
      captions: caption files; TFX fingerprints them (they form the input split pattern).
      image_features: ``.npy`` matrix [N, D] of image features; empty when the ExampleGen gets
        them as its ``image_features`` input artifact (an ImageFeaturizer output).
      image_feature_names: text file, line i = image file name of row i (empty with the
        artifact, like ``image_features``).
      image_feature_dim: expected D (0 accepts the matrix's width).
      splits: output splits, ``train`` and ``eval`` and optionally ``test``.
      split_lists: (output split, file) pairs; flickr: image names, coco: image ids per line.
      caption_splits: coco only: the output split of each caption file (parallel to ``captions``).
      caption_features: optional ``.npy`` [M, Dc] of caption features, joined on caption id.
      caption_feature_ids: text file, line i = caption id of row i.
      caption_feature_dim: expected Dc (0 accepts the matrix's width).
      restval_split: karpathy only: output split of ``restval`` images, or ``skip``.
      unlisted_images: captions whose image is in no split list: ``skip`` (counted) or ``error``.
      uncaptioned_listed_images: split-list images without captions: ``error`` or ``skip``.
      fingerprint: free text that callers change to bust the cache (e.g. of featurized images).

    """

    format: str
    captions: tuple[str, ...]
    image_features: str = ""
    image_feature_names: str = ""
    image_feature_dim: int = 0
    splits: tuple[str, ...] = (TRAIN_SPLIT, EVAL_SPLIT)
    split_lists: tuple[tuple[str, str], ...] = ()
    caption_splits: tuple[str, ...] = ()
    caption_features: str = ""
    caption_feature_ids: str = ""
    caption_feature_dim: int = 0
    restval_split: str = TRAIN_SPLIT
    unlisted_images: str = "skip"
    uncaptioned_listed_images: str = "error"
    fingerprint: str = ""

    def __post_init__(self):
        """Normalizes sequences to tuples and validates; ValueError names the field."""
        object.__setattr__(self, "captions", tuple(self.captions))
        object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "caption_splits", tuple(self.caption_splits))
        object.__setattr__(self, "split_lists", tuple(tuple(p) for p in self.split_lists))
        problems = _problems(self)
        if problems:
            raise ValueError("DatasetSpec: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DatasetSpec:
        """Builds a spec from plain values (e.g. ``custom_config``); unknown keys → ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"DatasetSpec: unknown keys {unknown}; known keys {sorted(known)}")
        return cls(**values)

    def to_custom_config(self) -> dict[str, Any]:
        """The spec as JSON-serializable values (``from_dict`` inverts it)."""
        values = dataclasses.asdict(self)
        values["split_lists"] = [list(pair) for pair in self.split_lists]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def input_pattern(self) -> str:
        """The ExampleGen input split pattern: the caption file, or a glob over several."""
        if len(self.captions) == 1:
            return self.captions[0]
        folder = posixpath.commonpath([posixpath.dirname(p) for p in self.captions])
        extensions = {posixpath.splitext(p)[1] for p in self.captions}
        suffix = extensions.pop() if len(extensions) == 1 else ""
        return posixpath.join(folder, f"*{suffix}")

    def karpathy_split_map(self) -> dict[str, str]:
        """Karpathy split name -> output split (or ``SKIP_SPLIT``)."""
        restval = SKIP_SPLIT if self.restval_split == "skip" else self.restval_split
        outputs = (TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT, restval)
        return dict(zip(KARPATHY_SPLITS, outputs, strict=True))


def _problems(spec: DatasetSpec) -> list[str]:
    problems = []
    if spec.format not in FORMATS:
        problems.append(f"format {spec.format!r} is not one of {FORMATS}")
    if not spec.captions or not all(spec.captions):
        problems.append("captions must name at least one caption file")
    if bool(spec.image_features) != bool(spec.image_feature_names):
        problems.append("image_features and image_feature_names go together (both empty: the "
                        "features come from the ExampleGen's image_features input artifact)")
    if bool(spec.caption_features) != bool(spec.caption_feature_ids):
        problems.append("caption_features and caption_feature_ids go together")
    if set(spec.splits) - set(SPLITS) or not {TRAIN_SPLIT, EVAL_SPLIT} <= set(spec.splits):
        problems.append(f"splits {spec.splits} must hold train and eval, from {SPLITS}")
    used = [s for s, _ in spec.split_lists] + list(spec.caption_splits)
    if spec.format == "karpathy":
        used += [s for s in spec.karpathy_split_map().values() if s != SKIP_SPLIT]
    problems += [f"split {s!r} is not among splits {spec.splits}" for s in used
                 if s not in spec.splits]
    if spec.restval_split not in (*SPLITS, "skip"):
        problems.append(f"restval_split {spec.restval_split!r} is not a split or 'skip'")
    problems += _format_problems(spec)
    for name in ("unlisted_images", "uncaptioned_listed_images"):
        if getattr(spec, name) not in POLICIES:
            problems.append(f"{name} must be one of {POLICIES}")
    if spec.image_feature_dim < 0 or spec.caption_feature_dim < 0:
        problems.append("feature dims must be >= 0")
    return problems


def _format_problems(spec: DatasetSpec) -> list[str]:
    if spec.format == "flickr" and not spec.split_lists:
        return ["format 'flickr' needs split_lists (split, image-list file)"]
    if spec.format == "coco" and not (spec.split_lists or spec.caption_splits):
        return ["format 'coco' needs caption_splits (one per caption file) or split_lists"]
    if spec.caption_splits and len(spec.caption_splits) != len(spec.captions):
        return ["caption_splits must give one split per caption file"]
    if spec.format == "karpathy" and (spec.split_lists or spec.caption_splits):
        return ["format 'karpathy' takes its splits from the JSON; drop split_lists"]
    return []

