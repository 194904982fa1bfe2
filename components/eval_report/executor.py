"""EvalReport executor: embeds the eval split with the candidate (and baseline), writes HTML."""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.eval_report import data, render, thumbnails
from serving.savedmodel import load_saved_model
from trainer import features

EVALUATION_KEY = "evaluation"
MODEL_KEY = "model"
BASELINE_MODEL_KEY = "baseline_model"
EXAMPLES_KEY = "examples"
REPORT_KEY = "report"
SPLIT_KEY = "split"
NUM_QUERIES_KEY = "num_queries"
MAX_K_KEY = "max_k"
IMAGES_DIR_KEY = "images_dir"


def report_path(report_uri: str) -> str:
    """The HTML page inside an EvalReport artifact (what the CLI links to)."""
    return os.path.join(report_uri, render.INDEX_HTML)


def read_split(examples: types.Artifact, split: str) -> list[bytes]:
    """Every serialized example of one split of an Examples artifact (GZIP or plain)."""
    if split not in artifact_utils.decode_split_names(examples.split_names):
        raise ValueError(f"Examples {examples.uri} has no split {split!r} "
                         f"(splits: {examples.split_names})")
    pattern = io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], split))
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no files match {pattern}")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type=compression)]


def embed_with(model: types.Artifact, records: list[bytes]) -> data.EvalEmbeddings:
    """Loads the exported model's ``serving_default`` (custom ops registered), embeds records."""
    loaded = load_saved_model(path_utils.serving_model_path(model.uri))
    return data.embed_examples(loaded.signatures[features.SERVING_DEFAULT_SIGNATURE], records)


class Executor(base_executor.BaseExecutor):
    """Writes ``index.html`` and ``recall_at_k.png`` into the report artifact."""

    def Do(  # noqa: N802  (TFX executor API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Builds the metric table, recall curves and the qualitative panel."""
        records = read_split(artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY]),
                             exec_properties[SPLIT_KEY])
        max_k = int(exec_properties[MAX_K_KEY])
        candidate = embed_with(artifact_utils.get_single_instance(input_dict[MODEL_KEY]), records)
        curves = {"candidate": data.recall_curves(candidate, max_k)}
        if input_dict.get(BASELINE_MODEL_KEY):
            baseline = artifact_utils.get_single_instance(input_dict[BASELINE_MODEL_KEY])
            curves["baseline"] = data.recall_curves(embed_with(baseline, records), max_k)
        evaluation = artifact_utils.get_single_instance(input_dict[EVALUATION_KEY])
        rows, validation_ok, failures = data.metric_rows(evaluation.uri)
        png = render.recall_plot_png(curves)
        queries = data.qualitative(candidate, int(exec_properties[NUM_QUERIES_KEY]))
        thumbs = thumbnails.load_thumbnails(exec_properties.get(IMAGES_DIR_KEY) or "",
                                            (i for q in queries for i, _, _ in q.top))
        notes = [f"split {exec_properties[SPLIT_KEY]!r}: {len(candidate.caption_ids)} captions, "
                 f"{len(candidate.gallery)} images", f"evaluation: {evaluation.uri}",
                 thumbs.note()]
        page = render.render_html(render.ReportPage("Retrieval evaluation", rows, validation_ok,
                                                    failures, png, queries, notes, thumbs.uris))
        output = artifact_utils.get_single_instance(output_dict[REPORT_KEY])
        tf.io.gfile.makedirs(output.uri)
        with tf.io.gfile.GFile(os.path.join(output.uri, render.RECALL_PNG), "wb") as f:
            f.write(png)
        with tf.io.gfile.GFile(report_path(output.uri), "w") as f:
            f.write(page)
        output.set_string_custom_property("report_path", report_path(output.uri))
        logging.info("Evaluation report: %s", report_path(output.uri))
