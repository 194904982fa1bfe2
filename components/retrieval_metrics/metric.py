"""Corpus-level retrieval metrics for TFMA: one ``Metric`` and a Beam ``CombineFn``.

The Evaluator runs the exported ``serving_default`` on raw eval examples (one per caption); the
combiner keeps every caption's text embedding and one image embedding per distinct image id, and
at the end calls the same pure functions as the tests (``trainer.metrics``). Accumulator memory is
``(N_img + N_txt) × d`` float32 plus the caption strings (5k images / 25k captions at d = 512:
about 60 MB); scoring is chunked (``trainer.metrics.DEFAULT_CHUNK`` queries at a time) and the
ROUGE-L relevance matrix adds ``N_txt × N_img`` float32 (500 MB for 25k × 5k) when nDCG is on.
The relevance matrix is read from ``relevance_dir`` under the eval set's content key (written by
the Relevance component); on a miss it is computed here with the same function and saved there.

TFMA imports this module (the ``MetricConfig`` module) before it loads the model, so importing
``serving.savedmodel`` here registers the TF-Text ops of a WordPiece (``minilm``) graph even in a
process that runs the Evaluator alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types

from components.relevance import store
from serving import savedmodel  # noqa: F401  (registers TF-Text ops before TFMA loads the model)
from trainer import features, metrics

DEFAULT_NAME = "retrieval"
RANK_NAMES = ("rsum", "i2t_medr", "t2i_medr", "i2t_meanr", "t2i_meanr")
NDCG_NAMES = ("t2i_ndcg", "i2t_ndcg", "i2i_ndcg", "t2t_ndcg")
_FEATURE_KEYS = (features.IMAGE_ID_KEY, features.CAPTION_ID_KEY, features.CAPTION_KEY)


def metric_names(ks: Sequence[int] = metrics.DEFAULT_KS, with_ndcg: bool = True) -> tuple[str, ...]:
    """Names of every metric that ``RetrievalMetrics`` emits (each can carry a threshold)."""
    recalls = tuple(f"{way}_r{k}" for way in ("i2t", "t2i") for k in ks)
    return recalls + RANK_NAMES + (NDCG_NAMES if with_ndcg else ())


@dataclasses.dataclass
class Accumulator:
    """Embeddings seen so far: one per distinct image id, one per caption id.

    Attributes:
      images: image id -> float32 [d] image embedding.
      captions: caption id -> (image id, caption text, float32 [d] text embedding).

    """

    images: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    captions: dict[str, tuple[str, str, np.ndarray]] = dataclasses.field(default_factory=dict)


def _scalar_text(value, name: str) -> str:
    """The one string of a per-example feature value ([1] bytes array or bytes)."""
    flat = np.asarray(value, dtype=object).reshape(-1)
    if flat.size != 1:
        raise ValueError(f"feature {name!r} must hold exactly one value per example; got {flat!r}")
    item = flat[0]
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


class RetrievalCombiner(beam.CombineFn):
    """Collects one model's embeddings over the eval split and scores the whole corpus."""

    def __init__(self, keys: dict[str, metric_types.MetricKey], model_name: str,
                 ks: Sequence[int], ndcg_k: int, relevance_dir: str, with_ndcg: bool):
        """Stores the settings.

        Args:
          keys: metric name -> the MetricKey it is reported under.
          model_name: which model's predictions to read ('' for a single model).
          ks: recall cut-offs.
          ndcg_k: nDCG cut-off.
          relevance_dir: cache directory of relevance matrices ('' = compute, do not cache).
          with_ndcg: whether to compute the four nDCG metrics.

        """
        self._keys = keys
        self._model_name = model_name
        self._ks = tuple(ks)
        self._ndcg_k = ndcg_k
        self._relevance_dir = relevance_dir
        self._with_ndcg = with_ndcg

    def create_accumulator(self) -> Accumulator:
        """An empty accumulator."""
        return Accumulator()

    def add_input(self, accumulator: Accumulator,
                  element: metric_types.StandardMetricInputs) -> Accumulator:
        """Adds one example (one caption); its image embedding is kept once per image id."""
        feats = element.features
        image_id, caption_id, caption = (_scalar_text(feats[k], k) for k in _FEATURE_KEYS)
        outputs = element.get_predictions(self._model_name or None)
        image = np.asarray(outputs[features.IMAGE_EMBEDDING_OUTPUT], np.float32).reshape(-1)
        text = np.asarray(outputs[features.TEXT_EMBEDDING_OUTPUT], np.float32).reshape(-1)
        if caption_id in accumulator.captions:
            raise ValueError(f"caption id {caption_id!r} appears twice in the eval split")
        accumulator.images.setdefault(image_id, image)
        accumulator.captions[caption_id] = (image_id, caption, text)
        return accumulator

    def merge_accumulators(self, accumulators) -> Accumulator:
        """Unions the accumulators; a caption id seen by two of them is an error."""
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for other in accumulators:
            duplicate = merged.captions.keys() & other.captions.keys()
            if duplicate:
                raise ValueError(f"caption id {min(duplicate)!r} appears twice in the eval split")
            for image_id, image in other.images.items():
                merged.images.setdefault(image_id, image)
            merged.captions.update(other.captions)
        return merged

    def extract_output(self, accumulator: Accumulator) -> dict[metric_types.MetricKey, float]:
        """Scores the corpus in canonical order (captions by id, images by id)."""
        if not accumulator.captions:
            return {key: float("nan") for key in self._keys.values()}
        caption_ids = list(accumulator.captions)
        eval_set = store.EvalSet.from_triples(
            [accumulator.captions[c][0] for c in caption_ids], caption_ids,
            [accumulator.captions[c][1] for c in caption_ids])
        image = np.stack([accumulator.images[i] for i in eval_set.gallery])
        text = np.stack([accumulator.captions[c][2] for c in eval_set.caption_ids])
        values = metrics.retrieval_metrics(image, eval_set.gallery, text, eval_set.image_ids,
                                           ks=self._ks)
        if self._with_ndcg:
            relevance, _ = store.load_or_compute(self._relevance_dir or None, eval_set)
            values.update(metrics.semantic_ndcg(image, eval_set.gallery, text,
                                                eval_set.image_ids, relevance,
                                                metrics.NdcgOptions(k=self._ndcg_k)))
        return {key: values[name] for name, key in self._keys.items()}


# TFMA calls this with the metric's config (its constructor's keywords) plus model_names and
# output_names, each by keyword: the signature is TFMA's, not ours to group.
def _retrieval_computations(  # noqa: PLR0913
    name: str = DEFAULT_NAME, ks: Sequence[int] = metrics.DEFAULT_KS,
    ndcg_k: int = metrics.DEFAULT_NDCG_K, relevance_dir: str = "", with_ndcg: bool = True,
    model_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
) -> metric_types.MetricComputations:
    """One computation per model (candidate and baseline), each emitting every named metric."""
    del name, output_names  # the metrics are named individually and read both outputs
    computations = []
    for model_name in model_names or [""]:
        # Unweighted corpus metrics: example_weighted=None, the key MetricsSpec.thresholds use.
        keys = {metric: metric_types.MetricKey(name=metric, model_name=model_name,
                                               example_weighted=None)
                for metric in metric_names(ks, with_ndcg)}
        computations.append(metric_types.MetricComputation(
            keys=list(keys.values()),
            preprocessors=[metric_types.FeaturePreprocessor(
                feature_keys=list(_FEATURE_KEYS),
                model_names=[model_name] if model_name else None)],
            combiner=RetrievalCombiner(keys, model_name, ks, ndcg_k, relevance_dir, with_ndcg)))
    return computations


class RetrievalMetrics(metric_types.Metric):
    """R@K both ways, rsum, median/mean ranks and ROUGE-L nDCG (t2i, i2t, i2i, t2t)."""

    def __init__(self, name: str = DEFAULT_NAME, ks: Sequence[int] = metrics.DEFAULT_KS,
                 ndcg_k: int = metrics.DEFAULT_NDCG_K, relevance_dir: str = "",
                 with_ndcg: bool = True):
        """Configures the metric (all arguments are JSON-serializable for MetricConfig).

        Args:
          name: the metric family name (the reported metrics carry their own names).
          ks: recall cut-offs.
          ndcg_k: nDCG cut-off.
          relevance_dir: cache directory of relevance matrices shared with the Relevance
            component; '' computes the matrix in-process without caching.
          with_ndcg: whether to compute nDCG (needs the relevance matrix).

        """
        super().__init__(_retrieval_computations, name=name, ks=list(ks), ndcg_k=ndcg_k,
                         relevance_dir=relevance_dir, with_ndcg=with_ndcg)

    @property
    def compute_confidence_interval(self) -> bool:
        """Corpus-level ranks do not decompose over examples, so no jackknife intervals."""
        return False
