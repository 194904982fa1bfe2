"""Beam steps of the caption ExampleGen: read, assign splits, check, join features, count.

Every record keeps its ``source`` (file and line/record) so that each error names where the bad
input is. Skips allowed by a policy are emitted on counted side outputs, never dropped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components.caption_example_gen import readers
from components.caption_example_gen.feature_table import FeatureTable
from components.caption_example_gen.records import CaptionRecord, IngestError, ListEntry
from components.caption_example_gen.validation import MAX_CAPTION_CHARS
from trainer.features import (
    CAPTION_FEATURES_KEY,
    CAPTION_ID_KEY,
    CAPTION_KEY,
    IMAGE_FEATURES_KEY,
    IMAGE_ID_KEY,
)

# Side-output tags of AssignSplits (also the names of their counts in the ingest report).
SKIPPED_UNLISTED = "skipped_captions_of_unlisted_images"
SKIPPED_BY_SPLIT_POLICY = "skipped_captions_by_split_policy"
SKIPPED_UNCAPTIONED = "skipped_listed_images_without_captions"
SKIPPED_TOO_LONG = "skipped_captions_over_max_length"


def _read_captions(
    item: tuple[str, str], fmt: str, karpathy_splits: Mapping[str, str]
) -> Iterator[CaptionRecord]:
    path, split = item
    if fmt == "flickr":
        return nonempty(readers.read_flickr_tokens(path), path, "caption file")
    if fmt == "karpathy":
        return nonempty(readers.read_karpathy(path, karpathy_splits), path, "caption file")
    return nonempty(readers.read_coco(path, split), path, "caption file")


def nonempty(records: Iterable, path: str, role: str) -> Iterator:
    """Yields ``records``, then fails naming ``path`` when there were none.

    An empty input file would otherwise surface only as "a split received no captions", which
    does not say which file to look at.
    """
    empty = True
    for record in records:
        empty = False
        yield record
    if empty:
        raise IngestError(f"{path}: the {role} holds no records (is it empty?)")


@beam.ptransform_fn
def ReadCaptions(  # noqa: N802  (Beam PTransform names are classes by convention)
    pipeline: beam.Pipeline,
    fmt: str,
    files: Sequence[tuple[str, str]],
    karpathy_splits: Mapping[str, str],
) -> beam.PCollection:
    """Reads every caption file: (path, split or "") pairs -> PCollection[CaptionRecord]."""
    return (
        pipeline
        | "CaptionFiles" >> beam.Create(list(files))
        | "Parse" >> beam.FlatMap(_read_captions, fmt, dict(karpathy_splits))
        | "Spread" >> beam.Reshuffle()
    )


def _single_listing(item: tuple[str, Iterable[ListEntry]]) -> tuple[str, ListEntry]:
    key, entries = item
    entries = sorted(entries, key=lambda e: e.source)
    if len(entries) > 1:
        raise IngestError(
            f"{entries[1].source}: image {key!r} is listed again (split '{entries[1].split}'; "
            f"first at {entries[0].source}, split '{entries[0].split}'); an image has one split"
        )
    return key, entries[0]


@beam.ptransform_fn
def ReadSplitLists(  # noqa: N802
    pipeline: beam.Pipeline, lists: Sequence[tuple[str, str]]
) -> beam.PCollection:
    """Reads (split, path) split lists -> PCollection[(image key, ListEntry)], one per key."""
    return (
        pipeline
        | "ListFiles" >> beam.Create(list(lists))
        | "Parse"
        >> beam.FlatMap(
            lambda pair: nonempty(readers.read_split_list(pair[1], pair[0]), pair[1], "split list")
        )
        | "ByKey" >> beam.Map(lambda entry: (entry.key, entry))
        | "Group" >> beam.GroupByKey()
        | "Single" >> beam.Map(_single_listing)
    )


def skip_example(record: CaptionRecord) -> str:
    """How a skipped caption is shown to the user: ``'<caption id>' (<file>:<line>)``.

    The id is a ``repr`` so that stray characters (a byte-order mark, a tab) are visible.
    """
    return f"{record.caption_id!r} ({record.source})"


def within_max_length(record: CaptionRecord) -> Iterator[CaptionRecord | beam.pvalue.TaggedOutput]:
    """Yields the record, or a tagged skip when its caption exceeds ``MAX_CAPTION_CHARS``."""
    if len(record.caption) > MAX_CAPTION_CHARS:
        yield beam.pvalue.TaggedOutput(SKIPPED_TOO_LONG, skip_example(record))
    else:
        yield record


class AssignSplits(beam.DoFn):
    """Gives each record its output split: its own, else its split list's (side input)."""

    def __init__(self, unlisted_policy: str):
        """``unlisted_policy``: ``skip`` (counted) or ``error`` for images in no split list."""
        self._unlisted_policy = unlisted_policy

    def process(
        self, record: CaptionRecord, listed: Mapping[str, ListEntry]
    ) -> Iterator[CaptionRecord | beam.pvalue.TaggedOutput]:
        """Yields the record with its split, or a tagged skip (``skip_example`` of it)."""
        if record.split == readers.SKIP_SPLIT:
            yield beam.pvalue.TaggedOutput(SKIPPED_BY_SPLIT_POLICY, skip_example(record))
        elif record.split:
            yield record
        elif record.list_key in listed:
            yield dataclasses.replace(record, split=listed[record.list_key].split)
        elif self._unlisted_policy == "skip":
            yield beam.pvalue.TaggedOutput(SKIPPED_UNLISTED, skip_example(record))
        else:
            raise IngestError(
                f"{record.source}: image {record.list_key!r} is in no split list "
                "(policy unlisted_images='error')"
            )


def uncaptioned_listed(
    item: tuple[str, Mapping[str, list]], policy: str
) -> Iterator[str]:
    """For a CoGroupByKey of split-list entries and captions: yields listed keys with no captions.

    Raises:
      IngestError: naming the split-list line, when ``policy`` is ``error``.

    """
    key, groups = item
    entries, captions = list(groups["listed"]), list(groups["captioned"])
    if entries and not captions:
        if policy == "error":
            raise IngestError(
                f"{entries[0].source}: split list names image {key!r}, which has no captions "
                f"(none, or only captions over {MAX_CAPTION_CHARS} characters; policy "
                "uncaptioned_listed_images='error')"
            )
        yield key


def check_unique(item: tuple[str, Iterable[str]]) -> Iterator[str]:
    """Yields the caption id once; raises naming both sources when it occurs twice."""
    caption_id, sources = item
    sources = sorted(sources)
    if len(sources) > 1:
        raise IngestError(
            f"{sources[1]}: duplicate caption id {caption_id!r} (also at {sources[0]}); "
            "caption ids must be unique"
        )
    yield caption_id


def to_example(record: CaptionRecord, image: np.ndarray, caption: np.ndarray | None) -> bytes:
    """Serializes one caption as a tf.Example with the contract's features.

    Args:
      record: the caption.
      image: float32 [D] image features.
      caption: float32 [Dc] caption features, or None.

    """
    example = tf.train.Example()
    feature = example.features.feature  # filled in place: no copies of the float lists
    feature[IMAGE_ID_KEY].bytes_list.value.append(record.image_id.encode("utf-8"))
    feature[CAPTION_ID_KEY].bytes_list.value.append(record.caption_id.encode("utf-8"))
    feature[CAPTION_KEY].bytes_list.value.append(record.caption.encode("utf-8"))
    feature[IMAGE_FEATURES_KEY].float_list.value.extend(image.tolist())
    if caption is not None:
        feature[CAPTION_FEATURES_KEY].float_list.value.extend(caption.tolist())
    return example.SerializeToString(deterministic=True)  # same bytes in every worker process


class JoinFeatures(beam.DoFn):
    """Joins image (and caption) features: CaptionRecord -> (split, image_id, serialized)."""

    def __init__(self, image: tuple[str, str, int], caption: tuple[str, str, int] | None):
        """``image``/``caption``: (matrix path, names path, expected width or 0)."""
        self._paths = (image, caption)
        self._tables: tuple[FeatureTable, FeatureTable | None] | None = None

    def setup(self) -> None:
        """Loads and validates the feature tables once per worker."""
        image, caption = self._paths
        self._tables = (FeatureTable(*image), FeatureTable(*caption) if caption else None)

    def process(self, record: CaptionRecord) -> Iterator[tuple[str, str, bytes]]:
        """Yields the record's split, image id and serialized tf.Example."""
        image_table, caption_table = self._tables
        image = _joined_row(image_table, record.image_id, record, self._paths[0][1])
        caption = None
        if caption_table is not None:
            caption = _joined_row(caption_table, record.caption_id, record, self._paths[1][1])
        yield record.split, record.image_id, to_example(record, image, caption)


def _joined_row(table: FeatureTable, key: str, record: CaptionRecord, names: str) -> np.ndarray:
    row = table.row(key)
    if row is None:
        raise IngestError(
            f"{record.source}: {key!r} has no features row in {names}; every caption needs one"
        )
    return row
