"""Corpus-level retrieval metrics as pure NumPy functions (the docs/architecture.md contract).

All embeddings are L2-normalized rows and similarity is the dot product. Scoring is chunked over
queries: at most ``chunk × gallery`` scores live at once, so a 5,000-image / 25,000-caption
evaluation needs the embeddings themselves (``(N_img + N_txt) × d`` floats), the relevance matrix
when nDCG is wanted (``N_txt × N_img`` floats) and ``chunk × N_txt`` scores of working memory.

Images usually repeat once per caption in an eval split; every function here deduplicates the
gallery by image id (first occurrence wins), so callers may pass the per-caption image rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

DEFAULT_KS = (1, 5, 10)
DEFAULT_NDCG_K = 25
DEFAULT_CHUNK = 256


def unique_gallery(image: np.ndarray, image_ids: Sequence) -> tuple[np.ndarray, list]:
    """Deduplicates gallery rows by image id, keeping the first occurrence of each id.

    Args:
      image: [N, d] image embeddings, possibly one row per caption.
      image_ids: [N] image ids (bytes, str or ints).

    Returns:
      ``(image [N_img, d], ids [N_img])`` in order of first appearance.

    """
    image = np.asarray(image)
    ids = list(np.asarray(image_ids).tolist())
    if image.ndim != 2 or image.shape[0] != len(ids):
        raise ValueError(
            f"image must be [N, d] with one row per image id; got shape {image.shape} "
            f"for {len(ids)} ids"
        )
    first: dict = {}
    for row, image_id in enumerate(ids):
        first.setdefault(image_id, row)
    rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    return image[rows], list(first)


def caption_image_index(text_image_ids: Sequence, gallery_ids: Sequence) -> np.ndarray:
    """Maps each caption's image id to its gallery row.

    Args:
      text_image_ids: [N_txt] the image id of every caption.
      gallery_ids: [N_img] unique gallery image ids.

    Returns:
      int64 [N_txt] gallery row of each caption's image.

    Raises:
      ValueError: a caption names an image that is not in the gallery, or a gallery image has
        no caption (its image→text rank would be undefined).

    """
    position = {image_id: row for row, image_id in enumerate(gallery_ids)}
    index = np.empty(len(text_image_ids), dtype=np.int64)
    for row, image_id in enumerate(np.asarray(text_image_ids).tolist()):
        if image_id not in position:
            raise ValueError(f"caption {row}: image id {image_id!r} is not in the image gallery")
        index[row] = position[image_id]
    counts = np.bincount(index, minlength=len(position))
    if len(position) and counts.min() == 0:
        orphan = gallery_ids[int(np.argmin(counts))]
        raise ValueError(f"gallery image {orphan!r} has no caption among text_image_ids")
    return index


def _prepare(image, image_ids, text, text_image_ids):
    """Deduplicates the gallery, checks shapes and casts both modalities to one float dtype."""
    gallery, gallery_ids = unique_gallery(image, image_ids)
    text = np.asarray(text)
    if text.ndim != 2 or text.shape[0] != len(text_image_ids):
        raise ValueError(
            f"text must be [N_txt, d] with one row per caption; got shape {text.shape} "
            f"for {len(text_image_ids)} text_image_ids"
        )
    if text.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"embedding sizes differ: image d={gallery.shape[1]}, text d={text.shape[1]}"
        )
    dtype = np.result_type(gallery.dtype, text.dtype, np.float32)
    index = caption_image_index(text_image_ids, gallery_ids)
    return gallery.astype(dtype, copy=False), text.astype(dtype, copy=False), index


def _chunks(n: int, chunk: int):
    """Yields ``(start, stop)`` bounds that cover ``range(n)`` in steps of ``chunk``."""
    for start in range(0, n, chunk):
        yield start, min(start + chunk, n)


def t2i_ranks(image: np.ndarray, text: np.ndarray, text_image_index: np.ndarray,
              chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """1-based rank of each caption's own image among all gallery images.

    Args:
      image: [N_img, d] unique gallery images.
      text: [N_txt, d] captions (queries).
      text_image_index: int [N_txt] gallery row of each caption's image.
      chunk: captions scored at once (``chunk × N_img`` scores in memory).

    Returns:
      int64 [N_txt]: 1 + the number of images scoring strictly higher than the positive.

    """
    ranks = np.empty(len(text), dtype=np.int64)
    for start, stop in _chunks(len(text), chunk):
        scores = text[start:stop] @ image.T
        positive = scores[np.arange(stop - start), text_image_index[start:stop]]
        ranks[start:stop] = 1 + np.count_nonzero(scores > positive[:, None], axis=1)
    return ranks


def i2t_ranks(image: np.ndarray, text: np.ndarray, text_image_index: np.ndarray,
              chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """1-based rank of each image's best-ranked own caption among all captions.

    Args:
      image: [N_img, d] unique gallery images (queries); each must own at least one caption.
      text: [N_txt, d] captions.
      text_image_index: int [N_txt] gallery row of each caption's image.
      chunk: images scored at once (``chunk × N_txt`` scores in memory).

    Returns:
      int64 [N_img]: 1 + the number of captions scoring strictly higher than the image's
      highest-scoring own caption.

    """
    order = np.argsort(text_image_index, kind="stable")
    bounds = np.searchsorted(text_image_index[order], np.arange(len(image) + 1))
    ranks = np.empty(len(image), dtype=np.int64)
    for start, stop in _chunks(len(image), chunk):
        scores = image[start:stop] @ text.T
        cols = order[bounds[start]:bounds[stop]]
        own = scores[text_image_index[cols] - start, cols]
        positive = np.maximum.reduceat(own, bounds[start:stop] - bounds[start])
        ranks[start:stop] = 1 + np.count_nonzero(scores > positive[:, None], axis=1)
    return ranks


def _rank_summary(prefix: str, ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Recall@K (percent), median and mean rank of one direction."""
    summary = {f"{prefix}_r{k}": 100.0 * float(np.mean(ranks <= k)) for k in ks}
    summary[f"{prefix}_medr"] = float(np.median(ranks))
    summary[f"{prefix}_meanr"] = float(np.mean(ranks))
    return summary


def retrieval_metrics(image, image_ids, text, text_image_ids, ks: Sequence[int] = DEFAULT_KS,
                      chunk: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Recall@K, rsum, median and mean rank for image→text and text→image retrieval.

    Args:
      image: [N, d] L2-normalized image embeddings; rows with a repeated id are deduplicated.
      image_ids: [N] image ids.
      text: [N_txt, d] L2-normalized caption embeddings.
      text_image_ids: [N_txt] the image id of every caption.
      ks: recall cut-offs.
      chunk: queries scored at once.

    Returns:
      ``i2t_r{k}``, ``t2i_r{k}`` (percent), ``rsum`` (sum of all recalls), ``i2t_medr``,
      ``t2i_medr``, ``i2t_meanr``, ``t2i_meanr`` (1-based ranks; the median of an even count is
      the mean of the two middle ranks).

    """
    gallery, text, index = _prepare(image, image_ids, text, text_image_ids)
    if not len(text):
        raise ValueError("retrieval_metrics needs at least one caption")
    result = _rank_summary("i2t", i2t_ranks(gallery, text, index, chunk), ks)
    result.update(_rank_summary("t2i", t2i_ranks(gallery, text, index, chunk), ks))
    result["rsum"] = sum(result[f"{way}_r{k}"] for way in ("i2t", "t2i") for k in ks)
    return result


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices [Q, k] of the k highest scores per row, ties broken by the lower index."""
    n = scores.shape[1]
    if k >= n:
        return np.argsort(-scores, axis=1, kind="stable")
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, top, axis=1).min(axis=1)
    ambiguous = np.count_nonzero(scores >= kth[:, None], axis=1) > k
    top_scores = np.take_along_axis(scores, top, axis=1)
    top = np.take_along_axis(top, np.lexsort((top, -top_scores), axis=1), axis=1)
    for row in np.flatnonzero(ambiguous):
        top[row] = np.argsort(-scores[row], kind="stable")[:k]
    return top


def ndcg_rows(scores: np.ndarray, relevance: np.ndarray, k: int = DEFAULT_NDCG_K) -> np.ndarray:
    """nDCG@k of every query row (gain 2^rel − 1, discount log2(rank + 1)).

    Args:
      scores: [Q, N] similarity of each query to each gallery item.
      relevance: [Q, N] graded relevance (e.g. ROUGE-L in [0, 1]).
      k: cut-off.

    Returns:
      float64 [Q]; a row whose ideal DCG is 0 (nothing relevant) scores 0.

    """
    scores = np.asarray(scores)
    relevance = np.asarray(relevance, dtype=np.float64)
    if scores.shape != relevance.shape or scores.ndim != 2:
        raise ValueError(
            f"scores {scores.shape} and relevance {relevance.shape} must be equal [Q, N]"
        )
    k = min(k, scores.shape[1])
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ranked = np.take_along_axis(relevance, _top_k(scores, k)[:, :k], axis=1)
    dcg = np.expm1(ranked * np.log(2.0)) @ discount
    ideal = -np.sort(-np.partition(relevance, relevance.shape[1] - k, axis=1)[:, -k:], axis=1)
    idcg = np.expm1(ideal * np.log(2.0)) @ discount
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def ndcg(scores, relevance, k: int = DEFAULT_NDCG_K) -> float:
    """Mean nDCG@k over query rows, as in TERAN (see ``ndcg_rows``).

    Args:
      scores: [Q, N] similarities.
      relevance: [Q, N] graded relevance.
      k: cut-off.

    Returns:
      The mean over the Q rows.

    """
    return float(np.mean(ndcg_rows(scores, relevance, k)))


RowsFn = Callable[[int, int], np.ndarray]


def _chunked_ndcg(queries: np.ndarray, gallery: np.ndarray, relevance_rows: RowsFn,
                  excluded_rows: RowsFn | None, k: int, chunk: int) -> float:
    """Mean nDCG@k with scores and relevance built one query chunk at a time.

    ``relevance_rows(start, stop)`` gives the [stop − start, N] relevance of those queries;
    ``excluded_rows`` a boolean mask of gallery items removed from each query's gallery.
    """
    total = 0.0
    for start, stop in _chunks(len(queries), chunk):
        scores = queries[start:stop] @ gallery.T
        relevance = np.array(relevance_rows(start, stop), dtype=np.float64)
        if excluded_rows is not None:
            mask = excluded_rows(start, stop)
            scores[mask] = -np.inf
            relevance[mask] = 0.0
        total += float(ndcg_rows(scores, relevance, k).sum())
    return total / max(len(queries), 1)


def image_relevance(relevance: np.ndarray, text_image_index: np.ndarray) -> np.ndarray:
    """Image→image relevance: for query image i, the mean of its captions' relevance rows.

    Args:
      relevance: [N_txt, N_img] relevance of image j to caption q.
      text_image_index: int [N_txt] gallery row of each caption's image.

    Returns:
      float32 [N_img, N_img].

    """
    n_img = relevance.shape[1]
    sums = np.zeros((n_img, n_img), dtype=np.float64)
    np.add.at(sums, text_image_index, relevance)
    counts = np.bincount(text_image_index, minlength=n_img)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


class NdcgOptions(NamedTuple):
    """How ``semantic_ndcg`` cuts and chunks its rankings.

    Attributes:
        k: cut-off.
        chunk: queries scored at once.

    """

    k: int = DEFAULT_NDCG_K
    chunk: int = DEFAULT_CHUNK


DEFAULT_NDCG_OPTIONS = NdcgOptions()

def semantic_ndcg(image, image_ids, text, text_image_ids, relevance,
                  options: NdcgOptions = DEFAULT_NDCG_OPTIONS) -> dict[str, float]:
    """nDCG@k of the four retrieval directions under a caption×image relevance matrix.

    Args:
      image: [N, d] image embeddings (deduplicated by id as in ``retrieval_metrics``).
      image_ids: [N] image ids.
      text: [N_txt, d] caption embeddings.
      text_image_ids: [N_txt] the image id of every caption.
      relevance: [N_txt, N_img] relevance of image j (deduplicated order) to caption q.
      options: the cut-off k and the queries scored at once.

    Returns:
      ``t2i_ndcg`` (captions query images), ``i2t_ndcg`` (images query captions, relevance
      transposed), ``i2i_ndcg`` (``image_relevance``, the query image excluded from the
      gallery) and ``t2t_ndcg`` (captions query the captions of other images; relevance of a
      candidate is that of its image).

    """
    gallery, text, index = _prepare(image, image_ids, text, text_image_ids)
    relevance = np.asarray(relevance, dtype=np.float32)
    if relevance.shape != (len(text), len(gallery)):
        raise ValueError(f"relevance must be [N_txt, N_img] = {(len(text), len(gallery))}; "
                         f"got {relevance.shape}")
    image_rel = image_relevance(relevance, index)
    k, chunk = options
    return {
        "t2i_ndcg": _chunked_ndcg(text, gallery, lambda a, b: relevance[a:b], None, k, chunk),
        "i2t_ndcg": _chunked_ndcg(gallery, text, lambda a, b: relevance[:, a:b].T, None, k, chunk),
        "i2i_ndcg": _chunked_ndcg(
            gallery, gallery, lambda a, b: image_rel[a:b],
            lambda a, b: np.arange(a, b)[:, None] == np.arange(len(gallery))[None, :], k, chunk),
        "t2t_ndcg": _chunked_ndcg(
            text, text, lambda a, b: relevance[a:b][:, index],
            lambda a, b: index[a:b, None] == index[None, :], k, chunk),
    }
