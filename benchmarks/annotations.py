"""Flickr8k's human relevance judgments: parsing, the judged relevance matrix, and its metrics.

Two tab-separated formats, one judged (image, caption) pair per line; the caption id names a
caption of the same split, possibly of another image:

* ``ExpertAnnotations.txt``: ``image  caption_id  s1  s2  s3``, three expert scores 1-4
  (1 unrelated, 2 minor aspects only, 3 almost describes it, 4 describes it without errors).
* ``CrowdFlowerAnnotations.txt``: ``image  caption_id  fraction_yes  n_yes  n_no``.

Scores become a graded relevance in [0, 1] (expert: (mean - 1) / 3; crowd: the fraction of "yes"
votes) for nDCG, and a binary "relevant" (expert mean >= 3, i.e. at least "almost describes it";
crowd: a majority of "yes") for R@K. Only judged pairs count: an unjudged pair has relevance 0
and is not relevant, whatever the dataset's own caption-image links say.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Sequence

import numpy as np

from trainer import metrics

EXPERT_FILE = "ExpertAnnotations.txt"
CROWD_FILE = "CrowdFlowerAnnotations.txt"
EXPERT_RELEVANT_MEAN = 3.0
CROWD_RELEVANT_FRACTION = 0.5
CROWD_FRACTION_TOLERANCE = 0.01
# (metric key, column header, decimals) of ``judgment_metrics`` in a ``seed_stats`` table
COLUMNS = (("t2i_ndcg", "t2i nDCG@25", 3), ("i2t_ndcg", "i2t nDCG@25", 3),
           *((f"{way}_r{k}", f"{way} R@{k}", 1) for way in ("t2i", "i2t") for k in (1, 5, 10)))
_CAPTION_ID = re.compile(r"^[^#\t]+#\d+$")


class AnnotationError(ValueError):
    """A malformed judgments line; the message names ``file:line``."""


@dataclasses.dataclass(frozen=True)
class Judgment:
    """One judged pair.

    Attributes:
        image: image file name.
        caption_id: ``IMAGE#N`` of the judged caption.
        score: graded relevance in [0, 1].
        relevant: whether the pair counts as a hit for R@K.
        source: ``file:line`` it came from.

    """

    image: str
    caption_id: str
    score: float
    relevant: bool
    source: str


def _number(text: str, kind: type, source: str, column: str):
    try:
        return kind(text)
    except ValueError:
        raise AnnotationError(f"{source}: {column} must be {kind.__name__}, got {text!r}") from None


def _expert(fields: list[str], source: str) -> tuple[float, bool]:
    scores = [_number(text, int, source, f"expert score {i}") for i, text in
              enumerate(fields, 1)]
    if any(not 1 <= score <= 4 for score in scores):
        raise AnnotationError(f"{source}: expert scores must be 1-4, got {scores}")
    mean = sum(scores) / len(scores)
    return (mean - 1.0) / 3.0, mean >= EXPERT_RELEVANT_MEAN


def _crowd(fields: list[str], source: str) -> tuple[float, bool]:
    fraction = _number(fields[0], float, source, "fraction of yes votes")
    yes = _number(fields[1], int, source, "number of yes votes")
    no = _number(fields[2], int, source, "number of no votes")
    if not 0.0 <= fraction <= 1.0 or yes < 0 or no < 0 or yes + no == 0:
        raise AnnotationError(f"{source}: need a fraction in [0, 1] and vote counts >= 0 with "
                              f"at least one vote, got {fraction}, {yes}, {no}")
    if abs(fraction - yes / (yes + no)) > CROWD_FRACTION_TOLERANCE:
        raise AnnotationError(f"{source}: fraction {fraction} is not yes / (yes + no) = "
                              f"{yes}/{yes + no}; columns out of order?")
    return fraction, fraction > CROWD_RELEVANT_FRACTION


_SCORERS = {EXPERT_FILE: _expert, CROWD_FILE: _crowd}


def parse_judgments(path: pathlib.Path, file_format: str) -> list[Judgment]:
    """Reads one judgments file.

    Args:
        path: the file.
        file_format: ``EXPERT_FILE`` or ``CROWD_FILE`` (which columns follow the ids).

    Returns:
        The judgments in file order; blank lines are ignored.

    Raises:
        AnnotationError: naming ``file:line`` for a line without 5 tab-separated columns, a
            caption id that is not ``IMAGE#N``, an out-of-range or non-numeric score, or a
            pair judged twice in the file.

    """
    scorer = _SCORERS[file_format]
    judgments: list[Judgment] = []
    seen: dict[tuple[str, str], str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        source = f"{path}:{line_no}"
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) != 5:
            raise AnnotationError(f"{source}: expected 5 tab-separated columns (image, caption "
                                  f"id, 3 scores), got {len(fields)}: {line[:80]!r}")
        image, caption_id = fields[:2]
        if not image or not _CAPTION_ID.match(caption_id):
            raise AnnotationError(f"{source}: expected an image name and a caption id "
                                  f"IMAGE#N, got {image!r}, {caption_id!r}")
        if (image, caption_id) in seen:
            raise AnnotationError(f"{source}: pair ({image}, {caption_id}) already judged at "
                                  f"{seen[image, caption_id]}")
        seen[image, caption_id] = source
        score, relevant = scorer(fields[2:], source)
        judgments.append(Judgment(image, caption_id, score, relevant, source))
    return judgments


def read_judgments(folder: pathlib.Path) -> dict[str, list[Judgment]]:
    """The judgments files present in ``folder``: file name -> judgments (may be empty)."""
    return {name: parse_judgments(folder / name, name) for name in _SCORERS
            if (folder / name).is_file()}


def judged_relevance(judgments: Sequence[Judgment], image_ids: Sequence[str],
                     caption_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The judgments as matrices over a split's captions (rows) and images (columns).

    Args:
        judgments: parsed judgments.
        image_ids: [N_img] the split's image names (column order).
        caption_ids: [N_txt] the split's caption ids (row order).

    Returns:
        ``(relevance float32 [N_txt, N_img], relevant bool [N_txt, N_img])``.

    Raises:
        ValueError: a judgment names an image or caption that is not in the split.

    """
    column = {name: j for j, name in enumerate(image_ids)}
    row = {name: i for i, name in enumerate(caption_ids)}
    relevance = np.zeros((len(row), len(column)), np.float32)
    relevant = np.zeros(relevance.shape, bool)
    for judgment in judgments:
        if judgment.image not in column or judgment.caption_id not in row:
            raise ValueError(f"{judgment.source}: image {judgment.image!r} or caption "
                             f"{judgment.caption_id!r} is not in the test split")
        at = row[judgment.caption_id], column[judgment.image]
        relevance[at], relevant[at] = judgment.score, judgment.relevant
    return relevance, relevant


def _recalls(scores: np.ndarray, relevant: np.ndarray, prefix: str,
             ks: Sequence[int]) -> dict[str, float]:
    """R@K (percent) of the query rows that have a relevant item: a relevant one in the top K."""
    queries = np.flatnonzero(relevant.any(axis=1))
    scores, relevant = scores[queries], relevant[queries]
    best = np.where(relevant, scores, -np.inf).max(axis=1)
    ranks = 1 + np.count_nonzero(scores > best[:, None], axis=1)
    result = {f"{prefix}_r{k}": 100.0 * float(np.mean(ranks <= k)) if len(queries) else
              float("nan") for k in ks}
    result[f"{prefix}_queries"] = float(len(queries))
    return result


def _ndcg(scores: np.ndarray, relevance: np.ndarray, prefix: str, k: int) -> dict[str, float]:
    """Mean nDCG@k over the query rows with a judged relevance above 0."""
    queries = np.flatnonzero(relevance.max(axis=1) > 0)
    value = metrics.ndcg(scores[queries], relevance[queries], k) if len(queries) else float("nan")
    return {f"{prefix}_ndcg": value}


def judgment_metrics(image: np.ndarray, text: np.ndarray, relevance: np.ndarray,
                     relevant: np.ndarray, ks: Sequence[int] = metrics.DEFAULT_KS,
                     k: int = metrics.DEFAULT_NDCG_K) -> dict[str, float]:
    """nDCG@k and R@K of both directions against human judgments.

    Args:
        image: [N_img, d] L2-normalized image embeddings (column order of ``relevance``).
        text: [N_txt, d] L2-normalized caption embeddings (row order).
        relevance: [N_txt, N_img] graded judged relevance (``judged_relevance``).
        relevant: [N_txt, N_img] binary judged relevance.
        ks: recall cut-offs.
        k: nDCG cut-off.

    Returns:
        ``t2i_ndcg``, ``i2t_ndcg``, ``t2i_r{k}``, ``i2t_r{k}`` and the number of queries of each
        direction with a relevant item (``t2i_queries``, ``i2t_queries``); the whole gallery of
        the split is ranked, only judged queries are scored.

    """
    scores = text @ image.T
    return {**_ndcg(scores, relevance, "t2i", k), **_ndcg(scores.T, relevance.T, "i2t", k),
            **_recalls(scores, relevant, "t2i", ks), **_recalls(scores.T, relevant.T, "i2t", ks)}
