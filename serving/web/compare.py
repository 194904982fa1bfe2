"""The compare view's answers: one query, each served model side by side, every result with S and R.

The paper's qualitative layout: a gallery image as the query with its top-k images (the query
itself left out, as in the i2i evaluation), then each of its captions as a query with its top-k
images. S is the result's cosine similarity to the query under that model. R is its relevance
from the project's relevance code (``serving.rouge``): ROUGE-L of the query caption against the
result's captions; for the image query, the mean of that over the query's captions (the
definition of ``trainer.metrics.image_relevance``). A text query is one caption panel. R is None
when the searched images do not all have captions.
"""

from __future__ import annotations

import numpy as np

from serving.search import Hit
from serving.web.model import LoadedModel
from serving.web.queries import QueryError, embed_text, thumbnail_url


def _relevance(model: LoadedModel, captions: list[str]) -> np.ndarray | None:
    """[len(captions), N] relevance of the model's images to each caption, or None."""
    scorer = model.relevance()
    return None if scorer is None else scorer.score(captions)


def _column(model: LoadedModel, hits: list[Hit], relevance: np.ndarray | None) -> dict:
    """One model's results of one panel."""
    results = []
    for hit in hits:
        row = model.image_row(hit.id)
        results.append({
            "id": hit.id, "caption": hit.text, "image": hit.id,
            "thumbnail": thumbnail_url(model, hit.id), "score": round(hit.score, 6),
            "relevance": None if relevance is None else round(float(relevance[row]), 4)})
    return {"model_name": model.name, "model_version": model.version, "results": results}


def _models(models: list[LoadedModel]) -> list[dict]:
    return [{"model_name": m.name, "model_version": m.version} for m in models]


def compare_text(models: list[LoadedModel], text: str, k: int) -> dict:
    """One panel: the caption ``text`` against each model's images."""
    columns = []
    for model in models:
        hits = model.searcher.images_near(embed_text(model, text), k)[0]
        relevance = _relevance(model, [text])
        columns.append(_column(model, hits, None if relevance is None else relevance[0]))
    return {"models": _models(models), "query": {"kind": "text", "text": text},
            "panels": [{"query": {"kind": "text", "text": text}, "columns": columns}]}


def _image_panel_column(model: LoadedModel, image_id: str, captions: list[str], k: int) -> dict:
    row = model.image_row(image_id)
    hits = model.searcher.images_near(model.index.image_embeddings[row:row + 1], k + 1)[0]
    hits = [hit for hit in hits if hit.id != image_id][:k]
    relevance = _relevance(model, captions)
    return _column(model, hits, None if relevance is None else relevance.mean(axis=0))


def compare_image(models: list[LoadedModel], image_id: str, k: int) -> dict:
    """The paper's layout for gallery image ``image_id``: the image, then each of its captions.

    Raises:
        QueryError: the image is not searched by every model (404), or has no captions (400).

    """
    for model in models:
        if model.image_row(image_id) is None:
            raise QueryError(f"image id {image_id!r} is not in the {model.source} of "
                             f"{model.name} version {model.version}", 404)
    captions = models[0].captions_of(image_id)
    if not captions:
        raise QueryError(f"image {image_id!r} has no captions to query with")
    query = {"kind": "image", "id": image_id, "thumbnail": thumbnail_url(models[0], image_id),
             "captions": captions}
    panels = [{"query": query,
               "columns": [_image_panel_column(m, image_id, captions, k) for m in models]}]
    caption_columns = []
    for model in models:
        hits = model.searcher.images_near(model.client.embed_text(captions), k)
        relevance = _relevance(model, captions)
        caption_columns.append([_column(model, hits[i], None if relevance is None else
                                        relevance[i]) for i in range(len(captions))])
    for i, caption in enumerate(captions):
        panels.append({"query": {"kind": "text", "text": caption},
                       "columns": [columns[i] for columns in caption_columns]})
    return {"models": _models(models), "query": query, "panels": panels}
