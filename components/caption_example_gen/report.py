"""The ingest report: per-split counts and every policy skip, counted in Beam and written as JSON.

The Beam pipeline writes the counts to ``<examples uri>/ingest_report.json``; the executor then
adds the static facts (format, span, files), logs the report and copies it onto the Examples
artifact as custom properties.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam

from components.caption_example_gen.records import IngestError
from components.caption_example_gen.validation import (
    MAX_CAPTION_CHARS,
    read_text_file,
    split_lines,
)

REPORT_FILE = "ingest_report.json"
FEATURE_ROWS = "image_feature_rows"
IMAGES = "images"
UNUSED_FEATURE_ROWS = "skipped_feature_rows_without_captions"
# Report key of one example (the smallest) of each non-empty skip.
SKIP_EXAMPLES = "skip_examples"
# Examples artifact custom properties: ``ingest_<count name>`` (int) and, for each non-empty
# skip, ``ingest_example_<count name>`` (one skipped item, shown in the run summary).
COUNT_PROPERTY_PREFIX = "ingest_"
EXAMPLE_PROPERTY_PREFIX = "ingest_example_"
# What each skip count means, for the run's terminal output.
SKIP_MEANINGS = {
    "skipped_captions_of_unlisted_images": "caption(s) skipped: their image is in no split list",
    "skipped_captions_by_split_policy": "caption(s) skipped by the split policy",
    "skipped_captions_over_max_length":
        f"caption(s) skipped: longer than {MAX_CAPTION_CHARS} characters",
    "skipped_listed_images_without_captions": "listed image(s) skipped: they have no captions",
    UNUSED_FEATURE_ROWS: "feature row(s) unused: their image has no kept caption",
}


def count_feature_rows(path: str) -> int:
    """Returns the number of lines (feature rows) in a row-names file."""
    return len(split_lines(read_text_file(path, "feature row names")))


def _finalize(
    counts: Mapping[str, int], splits: Sequence[str], examples: Mapping[str, str] | None = None
) -> str:
    counts = dict(counts)
    for split in splits:
        counts.setdefault(f"examples_{split}", 0)
        counts.setdefault(f"images_{split}", 0)
    empty = [s for s in splits if counts[f"examples_{s}"] == 0]
    if empty:
        raise IngestError(f"output split(s) {empty} received no captions; check the split config")
    counts[UNUSED_FEATURE_ROWS] = counts[FEATURE_ROWS] - counts[IMAGES]
    return json.dumps({**counts, SKIP_EXAMPLES: dict(examples or {})}, sort_keys=True)


def _keyed_total(pcoll: beam.PCollection, name: str) -> beam.PCollection:
    return (
        pcoll
        | f"Count[{name}]" >> beam.combiners.Count.Globally()
        | f"Key[{name}]" >> beam.Map(lambda n, key=name: (key, n))
    )


def _keyed_example(pcoll: beam.PCollection, name: str) -> beam.PCollection:
    """(name, smallest element) when ``pcoll`` is not empty: a stable example of a skip."""
    return (
        pcoll
        | f"Smallest[{name}]" >> beam.CombineGlobally(_smallest)
        | f"KeyExample[{name}]" >> beam.FlatMap(_keyed, name)
    )


def _smallest(values: Iterable[str | None]) -> str | None:
    """The smallest value; None stands for "no value" (Beam may merge empty partial results)."""
    return min((v for v in values if v is not None), default=None)


def _keyed(smallest: str | None, key: str) -> list[tuple[str, str]]:
    return [] if smallest is None else [(key, smallest)]


def write_counts(
    joined: beam.PCollection,
    skipped: Mapping[str, beam.PCollection],
    names_path: str,
    splits: Sequence[str],
    report_path: str,
) -> None:
    """Counts examples and images per split, skips and feature rows, and writes them as JSON.

    Args:
      joined: PCollection[(split, image_id, serialized example)].
      skipped: report name -> PCollection of skipped items (one element per skip).
      names_path: the image-feature row names (counted; rows without captions are reported).
      splits: the output splits (each must receive at least one caption).
      report_path: the JSON file to write.

    """
    pipeline = joined.pipeline
    per_split = (
        joined
        | "ExampleKeys" >> beam.Map(lambda t: (f"examples_{t[0]}", 1))
        | "ExamplesPerSplit" >> beam.CombinePerKey(sum)
    )
    split_images = joined | "SplitImages" >> beam.Map(lambda t: (t[0], t[1])) | beam.Distinct()
    images_per_split = (
        split_images
        | "ImageKeys" >> beam.Map(lambda kv: (f"images_{kv[0]}", 1))
        | "ImagesPerSplit" >> beam.CombinePerKey(sum)
    )
    images = joined | "Images" >> beam.Map(lambda t: t[1]) | "DistinctImages" >> beam.Distinct()
    rows = (
        pipeline
        | "NamesFile" >> beam.Create([names_path])
        | "FeatureRows" >> beam.Map(lambda p: (FEATURE_ROWS, count_feature_rows(p)))
    )
    totals = [_keyed_total(pc, name) for name, pc in sorted(skipped.items())]
    examples = (
        [_keyed_example(pc, name) for name, pc in sorted(skipped.items())]
        | "AllExamples" >> beam.Flatten(pipeline=pipeline)
        | "ExamplesToDict" >> beam.combiners.ToDict()
    )
    (
        (per_split, images_per_split, rows, _keyed_total(images, IMAGES), *totals)
        | "AllCounts" >> beam.Flatten()
        | "ToDict" >> beam.combiners.ToDict()
        | "Finalize" >> beam.Map(_finalize, list(splits), beam.pvalue.AsSingleton(examples))
        | "Write" >> beam.io.WriteToText(report_path, shard_name_template="", num_shards=1)
    )


def read_counts(report_path: str) -> tuple[dict[str, int], dict[str, str]]:
    """Reads what ``write_counts`` wrote: (counts, one example of each non-empty skip)."""
    counts = json.loads(read_text_file(report_path, "ingest report").decode("utf-8"))
    return counts, counts.pop(SKIP_EXAMPLES, {})


def skip_lines(counts: Mapping[str, Any], examples: Mapping[str, str]) -> list[str]:
    """One line per non-zero skip count, with its example, for the run's terminal output.

    Args:
      counts: skip name (``SKIP_MEANINGS``) -> count; other names are ignored.
      examples: skip name -> one skipped item.

    """
    lines = []
    for name, meaning in SKIP_MEANINGS.items():
        if counts.get(name):
            example = f", e.g. {examples[name]}" if examples.get(name) else ""
            lines.append(f"ingest: {counts[name]} {meaning}{example}")
    return lines
