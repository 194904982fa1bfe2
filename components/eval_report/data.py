"""What the evaluation report shows: metric table, recall@K curves, qualitative text queries."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import text_format

from trainer import features, metrics


@dataclasses.dataclass(frozen=True)
class MetricRow:
    """One metric of the candidate, with the baseline's value and the difference when known."""

    name: str
    candidate: float
    baseline: float | None = None
    diff: float | None = None


@dataclasses.dataclass(frozen=True)
class EvalEmbeddings:
    """A model's embeddings of an eval split (captions sorted by caption id).

    Attributes:
      caption_ids, captions, text_image_ids: [N_txt] per caption.
      text: float32 [N_txt, d] caption embeddings.
      gallery: [N_img] distinct image ids, sorted.
      image: float32 [N_img, d] image embeddings, rows aligned with ``gallery``.

    """

    caption_ids: tuple[str, ...]
    captions: tuple[str, ...]
    text_image_ids: tuple[str, ...]
    text: np.ndarray
    gallery: tuple[str, ...]
    image: np.ndarray

    def text_image_index(self) -> np.ndarray:
        """int64 [N_txt]: gallery row of each caption's image."""
        return metrics.caption_image_index(self.text_image_ids, self.gallery)


def _first(example: tf.train.Example, key: str) -> str:
    values = example.features.feature[key].bytes_list.value
    if len(values) != 1:
        raise ValueError(f"eval example: feature {key!r} must hold one bytes value, "
                         f"found {len(values)}")
    return values[0].decode("utf-8")


def embed_examples(serving_fn, records: Sequence[bytes], batch_size: int = 512) -> EvalEmbeddings:
    """Runs ``serving_default`` over serialized raw examples, deduplicating images by id.

    Args:
      serving_fn: the exported ``serving_default`` concrete function.
      records: serialized tf.Examples, one per caption.
      batch_size: examples per call.

    Returns:
      The embeddings in canonical order.

    """
    rows, text_parts, image_of = [], [], {}
    for start in range(0, len(records), batch_size):
        batch = list(records[start:start + batch_size])
        out = serving_fn(**{features.EXAMPLES_INPUT: tf.constant(batch)})
        images = out[features.IMAGE_EMBEDDING_OUTPUT].numpy()
        text_parts.append(out[features.TEXT_EMBEDDING_OUTPUT].numpy())
        for offset, record in enumerate(batch):
            example = tf.train.Example.FromString(record)
            image_id = _first(example, features.IMAGE_ID_KEY)
            rows.append((_first(example, features.CAPTION_ID_KEY),
                         _first(example, features.CAPTION_KEY), image_id))
            image_of.setdefault(image_id, images[offset])
    text = np.concatenate(text_parts) if text_parts else np.zeros((0, 0), np.float32)
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])
    gallery = tuple(sorted(image_of))
    caption_ids, captions, image_ids = (tuple(rows[i][c] for i in order) for c in range(3))
    return EvalEmbeddings(caption_ids, captions, image_ids, text[order], gallery,
                          np.stack([image_of[g] for g in gallery]))


def recall_curves(emb: EvalEmbeddings, max_k: int) -> dict[str, np.ndarray]:
    """R@K in percent for K = 1..max_k: ``{"t2i": [max_k], "i2t": [max_k]}``."""
    index = emb.text_image_index()
    ks = np.arange(1, max_k + 1)
    curves = {}
    for way, ranks in (("t2i", metrics.t2i_ranks(emb.image, emb.text, index)),
                       ("i2t", metrics.i2t_ranks(emb.image, emb.text, index))):
        curves[way] = 100.0 * (ranks[None, :] <= ks[:, None]).mean(axis=1)
    return curves


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """A text query, its ground-truth image and rank, and its top images with a caption each."""

    caption_id: str
    caption: str
    truth: str
    truth_rank: int
    top: tuple[tuple[str, str, bool], ...]  # (image id, one caption of it, is ground truth)

    @property
    def hit(self) -> bool:
        """Whether the ground truth is among the shown top images."""
        return any(is_truth for _, _, is_truth in self.top)


def qualitative(emb: EvalEmbeddings, num_queries: int, top: int = 5) -> list[QueryResult]:
    """Text queries spread evenly over the sorted caption ids, with their top images."""
    index = emb.text_image_index()
    first_caption = {}
    for image_id, caption in zip(emb.text_image_ids, emb.captions, strict=True):
        first_caption.setdefault(image_id, caption)
    picks = np.unique(np.linspace(0, len(emb.caption_ids) - 1, num_queries).astype(int))
    scores = emb.text[picks] @ emb.image.T
    ranks = metrics.t2i_ranks(emb.image, emb.text[picks], index[picks])
    results = []
    for row, q in enumerate(picks):
        best = np.argsort(-scores[row], kind="stable")[:top]
        truth = emb.text_image_ids[q]
        shown = tuple((emb.gallery[j], first_caption[emb.gallery[j]], emb.gallery[j] == truth)
                      for j in best)
        results.append(QueryResult(emb.caption_ids[q], emb.captions[q], truth, int(ranks[row]),
                                   shown))
    return results


def metric_rows(evaluation_uri: str) -> tuple[list[MetricRow], bool | None, list[str]]:
    """The overall-slice metrics of a TFMA evaluation and its validation outcome.

    Returns:
      ``(rows, validation_ok, failures)``: one row per candidate metric (sorted by name), the
      validation result (None when no validation was run) and readable failure lines.

    """
    import tensorflow_model_analysis as tfma

    values: dict[tuple[str, str, bool], float] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for kv in slice_metrics.metric_keys_and_values:
            if kv.value.HasField("double_value"):
                key = kv.key
                values[(key.name, key.model_name, key.is_diff)] = kv.value.double_value.value
    candidates = {model for (_, model, diff) in values if diff} or {""}
    candidate = sorted(candidates)[0]
    baseline = next((m for (_, m, _) in values if m not in candidates), None)
    rows = [MetricRow(name, value, values.get((name, baseline, False)),
                      values.get((name, candidate, True)))
            for (name, model, diff), value in sorted(values.items())
            if model == candidate and not diff]
    if not tf.io.gfile.glob(os.path.join(evaluation_uri, "validations*")):
        return rows, None, []
    result = tfma.load_validation_result(evaluation_uri)
    failures = [f"{f.metric_key.name} = {f.metric_value.double_value.value:.4g} fails "
                f"{text_format.MessageToString(f.metric_threshold, as_one_line=True)} "
                f"{f.message.strip()}".strip()
                for s in result.metric_validations_per_slice for f in s.failures]
    return rows, bool(result.validation_ok), failures
