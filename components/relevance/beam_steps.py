"""Beam steps of the Relevance component: parse captions, score query chunks in parallel.

The eval set travels to every worker as a side input (``N_txt`` short strings); each worker
builds one ``RelevanceScorer`` per eval set and scores its chunk of query captions, writing the
rows ``[stop − start, N_img]`` float32 to ``<shard_dir>/rows-<start>.npy``. ``assemble`` stacks
the shards in order afterwards (bounded by the final matrix, never through the Beam shuffle).
"""

from __future__ import annotations

import io
import json
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components.relevance.store import EvalSet
from trainer import features

SHARD_PREFIX = "rows-"
EVAL_SET_FILE = "eval_set.json"
_TEXT_KEYS = (features.IMAGE_ID_KEY, features.CAPTION_ID_KEY, features.CAPTION_KEY)


def parse_triple(record: bytes) -> tuple[str, str, str]:
    """``(image_id, caption_id, caption)`` of one serialized tf.Example.

    Raises:
      ValueError: a feature is missing or does not hold exactly one bytes value; the message
        names the feature and the caption id when it is readable.

    """
    example = tf.train.Example.FromString(record)
    values = []
    for key in _TEXT_KEYS:
        feature = example.features.feature.get(key)
        found = list(feature.bytes_list.value) if feature is not None else []
        if len(found) != 1:
            caption_id = example.features.feature[features.CAPTION_ID_KEY].bytes_list.value
            raise ValueError(f"example {list(caption_id)!r}: feature {key!r} must hold exactly one "
                             f"bytes value, found {len(found)}")
        values.append(found[0].decode("utf-8"))
    return values[0], values[1], values[2]


def _eval_set(triples: list[tuple[str, str, str]]) -> EvalSet:
    image_ids, caption_ids, captions = zip(*triples, strict=True) if triples else ((), (), ())
    return EvalSet.from_triples(image_ids, caption_ids, captions)


def write_eval_set(eval_set: EvalSet, shard_dir: str) -> str:
    """Writes the canonical captions next to the shards; returns the path."""
    path = os.path.join(shard_dir, EVAL_SET_FILE)
    payload = {"image_ids": eval_set.image_ids, "caption_ids": eval_set.caption_ids,
               "captions": eval_set.captions}
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(payload))
    return path


def read_eval_set(shard_dir: str) -> EvalSet:
    """The eval set that ``write_eval_set`` wrote into ``shard_dir``."""
    with tf.io.gfile.GFile(os.path.join(shard_dir, EVAL_SET_FILE)) as f:
        payload = json.loads(f.read())
    return EvalSet.from_triples(payload["image_ids"], payload["caption_ids"], payload["captions"])


def _chunks(eval_set: EvalSet, queries_per_task: int):
    n = len(eval_set.caption_ids)
    for start in range(0, n, queries_per_task):
        yield start, min(start + queries_per_task, n)


class ScoreChunk(beam.DoFn):
    """Scores one chunk of query captions against the whole eval gallery."""

    def __init__(self, shard_dir: str):
        """Args: shard_dir: where the row shards go."""
        self._shard_dir = shard_dir
        self._scorer = None
        self._key = None
        self._captions = beam.metrics.Metrics.counter("relevance", "query_captions")
        self._long = beam.metrics.Metrics.counter("relevance", "queries_over_64_words")
        self._cut = beam.metrics.Metrics.counter("relevance", "queries_cut_to_max_words")

    def process(self, bounds: tuple[int, int], eval_set: EvalSet):
        """Writes ``rows-<start>.npy`` and yields its path."""
        if self._key != eval_set.key:
            self._scorer, self._key = eval_set.scorer(), eval_set.key
        start, stop = bounds
        long_before, cut_before = self._scorer.long_queries, self._scorer.cut_queries
        rows = self._scorer.score(eval_set.captions[start:stop])
        self._captions.inc(stop - start)
        self._long.inc(self._scorer.long_queries - long_before)
        self._cut.inc(self._scorer.cut_queries - cut_before)
        path = os.path.join(self._shard_dir, f"{SHARD_PREFIX}{start:010d}.npy")
        buffer = io.BytesIO()
        np.save(buffer, rows)
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(buffer.getvalue())
        yield path


def score_shards(triples: beam.PCollection, shard_dir: str,
                 queries_per_task: int) -> tuple[beam.PCollection, beam.PCollection]:
    """Builds the eval set from ``(image_id, caption_id, caption)`` and scores it in chunks.

    Returns:
      ``(eval_set_path, shard_paths)``: the path of the written eval set (``read_eval_set``)
      and the paths of the written row shards.

    """
    eval_set = (triples | "CollectCaptions" >> beam.combiners.ToList()
                | "CanonicalEvalSet" >> beam.Map(_eval_set))
    eval_set_path = eval_set | "WriteEvalSet" >> beam.Map(write_eval_set, shard_dir)
    shards = (eval_set
              | "QueryChunks" >> beam.FlatMap(_chunks, queries_per_task)
              | "Spread" >> beam.Reshuffle()
              | "Score" >> beam.ParDo(ScoreChunk(shard_dir), beam.pvalue.AsSingleton(eval_set)))
    return eval_set_path, shards


def assemble(shard_dir: str, eval_set: EvalSet) -> np.ndarray:
    """Stacks the row shards into float32 [N_txt, N_img]; a missing row range is an error."""
    paths = sorted(tf.io.gfile.glob(os.path.join(shard_dir, f"{SHARD_PREFIX}*.npy")))
    blocks, expected_start = [], 0
    for path in paths:
        start = int(os.path.basename(path)[len(SHARD_PREFIX):-len(".npy")])
        if start != expected_start:
            raise ValueError(f"{shard_dir}: rows {expected_start}..{start - 1} have no shard")
        with tf.io.gfile.GFile(path, "rb") as f:
            blocks.append(np.load(io.BytesIO(f.read())))
        expected_start += len(blocks[-1])
    if expected_start != len(eval_set.caption_ids):
        raise ValueError(f"{shard_dir}: shards cover {expected_start} of "
                         f"{len(eval_set.caption_ids)} captions")
    if not blocks:
        return np.zeros((0, len(eval_set.gallery)), np.float32)
    return np.concatenate(blocks)
