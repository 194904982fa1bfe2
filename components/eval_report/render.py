"""Renders the evaluation report: one self-contained HTML page plus the recall@K PNG."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

from components.eval_report.data import MetricRow, QueryResult

RECALL_PNG = "recall_at_k.png"
INDEX_HTML = "index.html"

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td.text, th.text { text-align: left; }
.ok { color: #0a7d22; font-weight: bold; } .bad { color: #b00020; font-weight: bold; }
.hit { background: #e5f6e8; }
figure.thumb { margin: 0; } figure.thumb img { display: block; max-width: 128px; }
figure.thumb figcaption { font-size: 0.85em; }
"""


def recall_plot_png(curves: Mapping[str, Mapping[str, np.ndarray]]) -> bytes:
    """PNG of R@K against K, one panel per direction, one line per model.

    Args:
      curves: model label -> ``{"t2i": [max_k], "i2t": [max_k]}`` recall in percent.

    Returns:
      The PNG file content.

    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib import ticker

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    titles = {"t2i": "text → image", "i2t": "image → text"}
    for axis, way in zip(axes, ("t2i", "i2t"), strict=True):
        for label, model_curves in curves.items():
            ks = np.arange(1, len(model_curves[way]) + 1)
            axis.plot(ks, model_curves[way], marker=".", label=label)
        axis.set(title=titles[way], xlabel="K", xscale="log", ylim=(0, 100))
        axis.xaxis.set_major_formatter(ticker.ScalarFormatter())
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("R@K (%)")
    axes[0].legend()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f}"


def _diff(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def _metric_table(rows: Sequence[MetricRow]) -> str:
    lines = ["<table><tr><th class='text'>metric</th><th>candidate</th><th>baseline</th>"
             "<th>diff</th></tr>"]
    for row in rows:
        lines.append(f"<tr><td class='text'>{html.escape(row.name)}</td>"
                     f"<td>{_number(row.candidate)}</td><td>{_number(row.baseline)}</td>"
                     f"<td>{_diff(row.diff)}</td></tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _image_cell(image_id: str, truth: bool, thumbnails: Mapping[str, str]) -> str:
    """The file name, under the image's thumbnail (a data URI) when there is one."""
    name = f"{html.escape(image_id)}{' ✓' if truth else ''}"
    uri = thumbnails.get(image_id)
    if uri is None:
        return f"<td class='text'>{name}</td>"
    return (f"<td class='text'><figure class='thumb'><img src='{uri}' "
            f"alt='{html.escape(image_id, quote=True)}'><figcaption>{name}</figcaption>"
            "</figure></td>")


def _query_panel(queries: Sequence[QueryResult], thumbnails: Mapping[str, str]) -> str:
    blocks = []
    for query in queries:
        verdict = ("<span class='ok'>ground truth in top 5</span>" if query.hit
                   else f"<span class='bad'>ground truth at rank {query.truth_rank}</span>")
        items = "".join(
            f"<tr class='{'hit' if truth else ''}'><td>{rank}</td>"
            f"{_image_cell(image_id, truth, thumbnails)}"
            f"<td class='text'>{html.escape(caption)}</td></tr>"
            for rank, (image_id, caption, truth) in enumerate(query.top, start=1))
        blocks.append(
            f"<h3>“{html.escape(query.caption)}”</h3><p>{html.escape(query.caption_id)} — "
            f"{verdict}</p><table><tr><th>rank</th><th class='text'>image</th>"
            f"<th class='text'>one of its captions</th></tr>{items}</table>")
    return "\n".join(blocks)


def _verdict(validation_ok: bool | None, failures: Sequence[str]) -> str:
    if validation_ok is None:
        return "<p>No thresholds were validated.</p>"
    if validation_ok:
        return "<p class='ok'>Validation passed: the candidate is blessed.</p>"
    items = "".join(f"<li>{html.escape(f)}</li>" for f in failures)
    return f"<p class='bad'>Validation failed: not blessed.</p><ul>{items}</ul>"


@dataclasses.dataclass(frozen=True)
class ReportPage:
    """What the report page shows.

    Attributes:
      title: the page title.
      rows: the metric table.
      validation_ok: the Evaluator's validation outcome (None: not validated).
      failures: readable validation failures.
      png: the recall@K plot.
      queries: the qualitative panel's text queries.
      notes: lines listed under the title.
      thumbnails: image id -> image data URI, shown above the file name in the panel.

    """

    title: str
    rows: Sequence[MetricRow]
    validation_ok: bool | None
    failures: Sequence[str]
    png: bytes
    queries: Sequence[QueryResult]
    notes: Sequence[str] = ()
    thumbnails: Mapping[str, str] | None = None


def render_html(page: ReportPage) -> str:
    """The whole report page (the PNG and thumbnails are embedded, so the file stands alone)."""
    image = base64.b64encode(page.png).decode("ascii")
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in page.notes)
    title = html.escape(page.title)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}"
            f"</title><style>{_STYLE}</style></head><body><h1>{title}</h1>"
            f"<ul>{note_items}</ul>{_verdict(page.validation_ok, page.failures)}"
            f"<h2>Metrics (overall slice) vs. baseline</h2>{_metric_table(page.rows)}"
            f"<h2>Recall@K</h2><img alt='recall at K' src='data:image/png;base64,{image}'>"
            f"<h2>Text queries: top-5 images</h2>"
            f"{_query_panel(page.queries, page.thumbnails or {})}</body></html>")
