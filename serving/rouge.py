"""ROUGE-L as in coco-caption, and a fast caption×image relevance matrix (TERAN's "R").

The relevance of image j to caption q is ROUGE-L of q (candidate) against the captions of j
(references): LCS over lowercased word tokens, precision and recall each maximized over the
references, F-measure with β = 1.2. ``rouge_l`` is the readable reference implementation;
``RelevanceScorer`` computes whole rows with bit-parallel LCS (Hyyrö 2004) over word ids in
NumPy: a query of ``m ≤ 64`` words is one uint64 bit-vector per reference, and every reference
token updates all (reference, query) pairs of a chunk with five vector operations. A longer query
takes the same recurrence on one Python integer as wide as the query, reference by reference
(``wide_lcs``).

Both read at most ``MAX_TOKENS`` words of a caption (``rouge_tokens``), so the LCS work of one
(query, reference) pair is at most ``MAX_TOKENS``² cells whatever the captions hold: one
20,000-character caption costs no more than a 500-word one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

BETA = 1.2
WORD_BITS = 64
# The words of a caption that ROUGE-L compares. Ingestion refuses captions over 1,000 characters
# (components.caption_example_gen.validation.MAX_CAPTION_CHARS), and 1,000 characters hold at
# most 500 words separated by a character each: only a caption from another source is cut.
MAX_TOKENS = 500
_WORD = re.compile(r"\w+")
_POPCOUNT16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.uint8)


def tokenize(caption: str) -> list[str]:
    """Lowercased word tokens (runs of Unicode word characters; punctuation dropped)."""
    return _WORD.findall(caption.lower())


def rouge_tokens(caption: str) -> list[str]:
    """The words ROUGE-L compares: the first ``MAX_TOKENS`` of ``tokenize(caption)``."""
    return tokenize(caption)[:MAX_TOKENS]


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two token sequences (plain DP)."""
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def f_measure(precision: np.ndarray, recall: np.ndarray, beta: float = BETA) -> np.ndarray:
    """coco-caption's ROUGE-L F-measure; 0 where precision or recall is 0 (same shapes)."""
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    denominator = recall + beta**2 * precision
    positive = (precision > 0) & (recall > 0)
    numerator = (1 + beta**2) * precision * recall
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=positive)


def rouge_l(candidate: str, references: Sequence[str], beta: float = BETA) -> float:
    """ROUGE-L of one candidate caption against its reference captions (coco-caption).

    Each caption counts with its first ``MAX_TOKENS`` words (``rouge_tokens``).

    Args:
      candidate: the query caption.
      references: one or more reference captions.
      beta: recall weight of the F-measure.

    Returns:
      The F-measure of the best precision and the best recall over the references.

    """
    if not references:
        raise ValueError("rouge_l needs at least one reference caption")
    cand = rouge_tokens(candidate)
    precision, recall = 0.0, 0.0
    for reference in references:
        ref = rouge_tokens(reference)
        lcs = lcs_length(ref, cand)
        precision = max(precision, lcs / len(cand) if cand else 0.0)
        recall = max(recall, lcs / len(ref) if ref else 0.0)
    return float(f_measure(precision, recall, beta))


def popcount(words: np.ndarray) -> np.ndarray:
    """Number of set bits of every uint64 (same shape, uint8)."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    halves = _POPCOUNT16[words.view(np.uint16)].reshape(*words.shape, 4)
    return halves[..., 0] + halves[..., 1] + halves[..., 2] + halves[..., 3]


def bit_parallel_lcs(query_ids: Sequence[np.ndarray], refs: np.ndarray,
                     ref_lengths: np.ndarray, num_ids: int) -> np.ndarray:
    """LCS lengths of every (reference, query) pair with one uint64 bit-vector per pair.

    Args:
      query_ids: Q int arrays of word ids, each of length ≤ 64.
      refs: int64 [N, L] reference word ids, 0-padded, rows sorted by length, longest first.
      ref_lengths: int [N] true lengths (non-increasing).
      num_ids: exclusive upper bound of the word ids in ``query_ids`` and ``refs``.

    Returns:
      int64 [N, Q] LCS lengths.

    """
    match = np.zeros((num_ids, len(query_ids)), dtype=np.uint64)  # [id, q]: positions in q
    lengths = np.array([len(q) for q in query_ids], dtype=np.int64)
    if lengths.size and lengths.max() > WORD_BITS:
        raise ValueError(f"bit_parallel_lcs takes queries of ≤ {WORD_BITS} words")
    rows = np.repeat(np.arange(len(query_ids)), lengths)
    ids = np.concatenate(query_ids) if len(query_ids) else np.zeros(0, np.int64)
    positions = np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else ids
    np.bitwise_or.at(match, (ids, rows), np.left_shift(np.uint64(1), positions.astype(np.uint64)))
    match[0] = 0  # padding matches nothing
    state = np.full((len(refs), len(query_ids)), np.iinfo(np.uint64).max, dtype=np.uint64)
    for j in range(refs.shape[1] if refs.ndim == 2 else 0):
        n = int(np.count_nonzero(ref_lengths > j))
        head = state[:n]
        step = match[refs[:n, j]]
        np.bitwise_and(step, head, out=step)
        total = head + step
        np.subtract(head, step, out=head)
        np.bitwise_or(head, total, out=head)
    high = np.where(lengths >= WORD_BITS, 0, np.left_shift(np.uint64(1), lengths.astype(np.uint64)))
    low_bits = high - np.uint64(1)  # wraps to all ones for 64-word queries
    return popcount(~state & low_bits[None, :]).astype(np.int64)


def wide_lcs(query: np.ndarray, refs: np.ndarray, ref_lengths: np.ndarray) -> np.ndarray:
    """LCS lengths of one query of any length against every reference (exact).

    The recurrence of ``bit_parallel_lcs`` on one Python integer of ``len(query)`` bits per
    reference: one step per reference word, so the work is the references' word count whatever
    the query's length.

    Args:
      query: int [m] word ids.
      refs: int64 [N, L] 0-padded reference word ids.
      ref_lengths: int [N] true lengths.

    Returns:
      int64 [N] LCS lengths.

    """
    full = (1 << len(query)) - 1
    match: dict[int, int] = {}
    for position, token in enumerate(query.tolist()):
        match[token] = match.get(token, 0) | (1 << position)
    out = np.zeros(len(refs), dtype=np.int64)
    for row, length in enumerate(np.asarray(ref_lengths).tolist()):
        state = full
        for token in refs[row, :length].tolist():
            step = state & match.get(token, 0)
            state = ((state + step) | (state - step)) & full
        out[row] = len(query) - bin(state).count("1")
    return out


class RelevanceScorer:
    """ROUGE-L relevance of query captions to every image of a fixed, captioned gallery.

    Attributes:
      num_images: gallery size (columns of ``score``).
      long_queries: how many scored queries exceeded 64 words and took ``wide_lcs``.
      cut_queries: how many scored queries had more than ``MAX_TOKENS`` words and were scored
        with their first ``MAX_TOKENS`` (references are cut the same way).

    """

    def __init__(self, references: Sequence[str], reference_image_index: Sequence[int],
                 num_images: int | None = None, beta: float = BETA):
        """Encodes the references once.

        Args:
          references: [N] reference captions (the captions of the gallery images).
          reference_image_index: int [N] gallery column of each reference's image.
          num_images: gallery size; defaults to ``max(reference_image_index) + 1``.
          beta: recall weight of the F-measure.

        Raises:
          ValueError: lengths differ, or a gallery image has no reference caption.

        """
        index = np.asarray(reference_image_index, dtype=np.int64)
        if index.shape != (len(references),):
            raise ValueError(f"{len(references)} references but {index.shape} image indices")
        self.num_images = int(index.max()) + 1 if num_images is None else num_images
        counts = np.bincount(index, minlength=self.num_images)
        if counts.size > self.num_images or (self.num_images and counts.min() == 0):
            raise ValueError("every gallery image needs at least one reference caption and "
                             f"indices must be < {self.num_images}; counts per image: {counts}")
        self.beta = beta
        self.long_queries = 0
        self.cut_queries = 0
        self._vocab: dict[str, int] = {}
        encoded = [self._encode(rouge_tokens(c), grow=True) for c in references]
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        self._sort = np.argsort(-lengths, kind="stable")
        self._sorted_lengths = lengths[self._sort]
        self._refs = np.zeros((len(encoded), int(lengths.max(initial=0))), dtype=np.int64)
        for row, ref in enumerate(self._sort):
            self._refs[row, : lengths[ref]] = encoded[ref]
        self._group = np.argsort(index, kind="stable")  # original order -> grouped by image
        self._starts = np.searchsorted(index[self._group], np.arange(self.num_images))
        self._group_lengths = lengths[self._group].astype(np.float64)
        self._unsort = np.argsort(self._sort)[self._group]  # sorted rows in grouped order

    def _encode(self, tokens: list[str], grow: bool = False) -> np.ndarray:
        """Word ids 1..V of known words; an unknown query word gets V + 1 (matches nothing)."""
        if grow:
            for token in tokens:
                self._vocab.setdefault(token, len(self._vocab) + 1)
        unknown = len(self._vocab) + 1
        return np.array([self._vocab.get(t, unknown) for t in tokens], dtype=np.int64)

    def _lcs(self, queries: list[np.ndarray]) -> np.ndarray:
        """int64 [N, Q] LCS lengths in the length-sorted reference order."""
        out = np.zeros((len(self._refs), len(queries)), dtype=np.int64)
        short = [i for i, q in enumerate(queries) if len(q) <= WORD_BITS]
        if short:
            out[:, short] = bit_parallel_lcs([queries[i] for i in short], self._refs,
                                             self._sorted_lengths, len(self._vocab) + 2)
        for i in sorted(set(range(len(queries))) - set(short)):
            self.long_queries += 1
            out[:, i] = wide_lcs(queries[i], self._refs, self._sorted_lengths)
        return out

    def score(self, queries: Sequence[str], chunk: int = 32) -> np.ndarray:
        """Relevance rows of the queries.

        Args:
          queries: [Q] query captions.
          chunk: queries per bit-parallel pass (memory ``N × chunk`` uint64).

        Returns:
          float32 [Q, num_images]: ROUGE-L of each query against each image's captions.

        """
        rows = np.zeros((len(queries), self.num_images), dtype=np.float32)
        for start in range(0, len(queries), chunk):
            words = [tokenize(q) for q in queries[start:start + chunk]]
            self.cut_queries += sum(len(w) > MAX_TOKENS for w in words)
            encoded = [self._encode(w[:MAX_TOKENS]) for w in words]
            lcs = self._lcs(encoded)[self._unsort].astype(np.float64)  # [N grouped, Qc]
            q_len = np.array([len(e) for e in encoded], dtype=np.float64)
            best = np.maximum.reduceat(lcs, self._starts, axis=0)  # [N_img, Qc]
            precision = np.divide(best, q_len, out=np.zeros_like(best), where=q_len > 0)
            ratio = np.divide(lcs, self._group_lengths[:, None], out=np.zeros_like(lcs),
                              where=self._group_lengths[:, None] > 0)
            recall = np.maximum.reduceat(ratio, self._starts, axis=0)
            rows[start:start + len(encoded)] = f_measure(precision, recall, self.beta).T
        return rows
