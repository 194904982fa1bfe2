"""Relevance executor: the ROUGE-L relevance matrix of one Examples split, scored with Beam.

ROUGE-L compares at most ``serving.rouge.MAX_TOKENS`` words of a caption; the captions cut to
that many are counted in the artifact's ``captions_cut_to_max_words`` property and logged.
"""

from __future__ import annotations

import os
import time
from typing import Any

import apache_beam as beam
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.relevance import beam_steps, store
from serving.rouge import MAX_TOKENS, tokenize

EXAMPLES_KEY = "examples"
RELEVANCE_KEY = "relevance"
SPLIT_KEY = "split"
CACHE_DIR_KEY = "cache_dir"
QUERIES_PER_TASK_KEY = "queries_per_task"
SHARDS_DIR = "shards"


class Executor(base_beam_executor.BaseBeamExecutor):
    """Reads the split, scores query chunks in parallel, writes the matrix (and the cache)."""

    def Do(  # noqa: N802  (TFX executor API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Writes ``<key>.npy`` / ``<key>.json`` into the artifact and into ``cache_dir``."""
        split = exec_properties[SPLIT_KEY]
        queries_per_task = int(exec_properties[QUERIES_PER_TASK_KEY])
        if queries_per_task < 1:
            raise ValueError(f"{QUERIES_PER_TASK_KEY}={queries_per_task}: must be >= 1")
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        if split not in artifact_utils.decode_split_names(examples.split_names):
            raise ValueError(f"Examples {examples.uri} has no split {split!r} "
                             f"(splits: {examples.split_names})")
        pattern = io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], split))
        output = artifact_utils.get_single_instance(output_dict[RELEVANCE_KEY])
        shard_dir = os.path.join(output.uri, SHARDS_DIR)
        io_utils.delete_dir(shard_dir)
        os.makedirs(shard_dir, exist_ok=True)
        started = time.perf_counter()
        with self._make_beam_pipeline() as pipeline:
            triples = (pipeline
                       | "Read" >> beam.io.ReadFromTFRecord(pattern, compression_type="auto")
                       | "Parse" >> beam.Map(beam_steps.parse_triple))
            beam_steps.score_shards(triples, shard_dir, queries_per_task)
        eval_set = beam_steps.read_eval_set(shard_dir)
        relevance = beam_steps.assemble(shard_dir, eval_set)
        seconds = time.perf_counter() - started
        store.save(output.uri, eval_set, relevance)
        io_utils.delete_dir(shard_dir)
        if exec_properties.get(CACHE_DIR_KEY):
            store.save(exec_properties[CACHE_DIR_KEY], eval_set, relevance)
        output.set_string_custom_property("content_key", eval_set.key)
        output.set_int_custom_property("num_captions", len(eval_set.caption_ids))
        output.set_int_custom_property("num_images", len(eval_set.gallery))
        _report_cut_captions(eval_set, output)
        output.set_float_custom_property("captions_per_second",
                                         len(eval_set.caption_ids) / max(seconds, 1e-9))


def _report_cut_captions(eval_set: store.EvalSet, output: types.Artifact) -> None:
    """Counts (artifact property) and logs the captions ROUGE-L read only the start of."""
    cut = [caption_id for caption_id, caption in zip(eval_set.caption_ids, eval_set.captions,
                                                     strict=True)
           if len(tokenize(caption)) > MAX_TOKENS]
    output.set_int_custom_property("captions_cut_to_max_words", len(cut))
    if cut:
        logging.warning("Relevance: %d caption(s) over %d words scored with their first %d, "
                        "e.g. %s", len(cut), MAX_TOKENS, MAX_TOKENS, cut[0])
