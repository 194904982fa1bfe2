"""Seeded runs -> mean ± standard deviation per setting, paired differences, Markdown rows.

A run is a JSON-like dict: ``{"loss", "mining", "seed", "best_epoch", "test": {metric: value}}``
(plus anything else). Standard deviations are sample standard deviations (``ddof = 1``) over
the seeds; with a single seed they are NaN and print as "–". A difference between two losses,
e.g. F-HN − HN, is taken per seed (both losses trained from the same seed: same initial towers,
same batch order) and its spread is the sample standard deviation of those paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# (metric key, column header, decimals)
COLUMNS = (
    ("i2t_r1", "i2t R@1", 1), ("i2t_r5", "i2t R@5", 1), ("i2t_r10", "i2t R@10", 1),
    ("t2i_r1", "t2i R@1", 1), ("t2i_r5", "t2i R@5", 1), ("t2i_r10", "t2i R@10", 1),
    ("rsum", "rsum", 1), ("i2t_medr", "i2t medr", 1), ("t2i_medr", "t2i medr", 1),
    ("i2t_ndcg", "i2t nDCG@25", 3), ("t2i_ndcg", "t2i nDCG@25", 3),
    ("i2i_ndcg", "i2i nDCG@25", 3), ("t2t_ndcg", "t2t nDCG@25", 3),
)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for fewer than two values)."""
    array = np.asarray(values, dtype=np.float64)
    if not array.size:
        raise ValueError("mean_std needs at least one value")
    std = float(np.std(array, ddof=1)) if array.size > 1 else math.nan
    return float(np.mean(array)), std


def _section(run: dict, section: str) -> dict[str, float]:
    values = run
    for key in section.split("/"):
        values = values[key]
    return values


def summarize(runs: Sequence[dict], section: str = "test") -> dict[str, dict]:
    """Per ``loss/mining``: the seeds, the selected epochs and ``metric -> [mean, std]``.

    Args:
        runs: run dicts.
        section: where the metrics are in a run (``"test"``, or a path like
            ``"judgments/ExpertAnnotations.txt"``).

    Returns:
        ``{"fhn/in_batch": {"seeds": [...], "best_epochs": [...], "metrics": {...}}, ...}`` in
        order of first appearance.

    """
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(f"{run['loss']}/{run['mining']}", []).append(run)
    summary = {}
    for name, group in groups.items():
        keys = _section(group[0], section).keys()
        summary[name] = {
            "seeds": [run["seed"] for run in group],
            "best_epochs": [run["best_epoch"] for run in group],
            "metrics": {key: list(mean_std([_section(run, section)[key] for run in group]))
                        for key in keys},
        }
    return summary


def paired_difference(runs: Sequence[dict], minuend: str, subtrahend: str, mining: str,
                      section: str = "test") -> dict[str, list[float]] | None:
    """``metric -> [mean, std]`` of the per-seed differences ``minuend − subtrahend``.

    Returns:
        None when one of the losses has no run under ``mining``.

    Raises:
        ValueError: the two losses were run with different seeds.

    """
    by_seed = {loss: {run["seed"]: _section(run, section) for run in runs
                      if run["loss"] == loss and run["mining"] == mining}
               for loss in (minuend, subtrahend)}
    if not by_seed[minuend] or not by_seed[subtrahend]:
        return None
    if by_seed[minuend].keys() != by_seed[subtrahend].keys():
        raise ValueError(f"{minuend} seeds {sorted(by_seed[minuend])} differ from "
                         f"{subtrahend} seeds {sorted(by_seed[subtrahend])} under {mining}")
    seeds = sorted(by_seed[minuend])
    keys = by_seed[minuend][seeds[0]].keys()
    return {key: list(mean_std([by_seed[minuend][seed][key] - by_seed[subtrahend][seed][key]
                                for seed in seeds])) for key in keys}


def cell(mean: float, std: float, decimals: int, signed: bool = False) -> str:
    """``"mean ± std"``; "–" for a NaN std; a leading "+" on positive means if ``signed``."""
    sign = "+" if signed else ""
    spread = "–" if math.isnan(std) else f"{std:.{decimals}f}"
    return f"{mean:{sign}.{decimals}f} ± {spread}"


def markdown_table(rows: dict[str, dict[str, list[float]]], first_header: str = "loss / mining",
                   columns: Sequence[tuple[str, str, int]] = COLUMNS,
                   signed: Sequence[str] = ()) -> str:
    """A Markdown table, one row per entry of ``rows`` (label -> ``metric -> [mean, std]``).

    Columns whose metric no row has are left out; ``signed`` labels print "+" on gains.
    """
    present = [column for column in columns if any(column[0] in row for row in rows.values())]
    lines = ["| " + " | ".join([first_header, *(header for _, header, _ in present)]) + " |",
             "| --- |" + " ---: |" * len(present)]
    for label, values in rows.items():
        cells = [cell(*values[key], decimals, label in signed) if key in values else ""
                 for key, _, decimals in present]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)
