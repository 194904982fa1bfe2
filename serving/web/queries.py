"""The searches behind the JSON API: inputs checked, results as JSON-ready rows.

Every row is ``{"id", "score", "caption", "image", "thumbnail"}``: the result's id (an image id,
or a caption id in the ``*2text`` modes), its cosine similarity to the query, its display text,
the image it shows and that image's thumbnail URL (None when its photo file is not at hand).
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse

import numpy as np

from serving.retry import ServingInvalidInputError
from serving.search import Hit
from serving.validation import DEFAULT_MAX_IMAGE_BYTES, check_image_bytes
from serving.web.model import LoadedModel

TEXT_MODES = {"text2image": "images", "text2text": "captions"}
PHOTO_MODES = {"image2image": "images", "image2text": "captions"}
IMAGES_PATH = "/images/"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_k: most results per query.
        max_query_chars: longest text query.
        max_upload_bytes: largest photo file.
        max_pixels: most pixels a photo may declare (decoding costs 3 bytes per pixel).

    """

    max_k: int = 100
    max_query_chars: int = 500
    max_upload_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = 25_000_000


class QueryError(ValueError):
    """A request the service refuses; ``status`` is its HTTP code (4xx)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def check_k(k: int, limits: Limits) -> int:
    """``k`` if it is within 1..``limits.max_k``, else QueryError."""
    if not 1 <= k <= limits.max_k:
        raise QueryError(f"k must be between 1 and {limits.max_k}, got {k}")
    return k


def check_mode(mode: str, modes: dict[str, str]) -> str:
    """The target (``images`` or ``captions``) of ``mode``, else QueryError listing the modes."""
    if mode not in modes:
        raise QueryError(f"mode must be one of {', '.join(modes)}; got {mode!r}")
    return modes[mode]


def check_text(query: str, limits: Limits) -> str:
    """The stripped query, or QueryError when it is empty or too long."""
    text = query.strip()
    if not text:
        raise QueryError("the query is empty: type a caption")
    if len(text) > limits.max_query_chars:
        raise QueryError(f"the query has {len(text)} characters, more than the limit of "
                         f"{limits.max_query_chars}")
    return text


def thumbnail_url(model: LoadedModel, image_id: str) -> str | None:
    """``/images/<id>`` when the photo file of ``image_id`` is at hand, else None."""
    if not model.photos.has_photo(image_id):
        return None
    return IMAGES_PATH + urllib.parse.quote(image_id)


def result_row(model: LoadedModel, hit: Hit, target: str) -> dict:
    """One JSON result of ``target`` (``images`` or ``captions``)."""
    image_id = hit.id if target == "images" else model.image_of_caption(hit.id)
    return {"id": hit.id, "score": round(hit.score, 6), "caption": hit.text, "image": image_id,
            "thumbnail": thumbnail_url(model, image_id)}


def nearest(model: LoadedModel, embeddings: np.ndarray, k: int, target: str) -> list[list[Hit]]:
    """Top-k of ``target`` per query row; QueryError when there are no captions to search."""
    if target == "images":
        return model.searcher.images_near(embeddings, k)
    if not model.searcher.has_captions:
        raise QueryError(f"{model.source} of {model.name} version {model.version} holds no "
                         "captions: use an image mode")
    return model.searcher.captions_near(embeddings, k)


def _answer(model: LoadedModel, mode: str, hits: list[Hit], target: str) -> dict:
    return {"model_name": model.name, "model_version": model.version, "mode": mode,
            "results": [result_row(model, hit, target) for hit in hits]}


def embed_text(model: LoadedModel, text: str) -> np.ndarray:
    """[1, d] embedding of a checked caption; QueryError when the encoder's rules refuse it."""
    try:
        return model.client.embed_text([text])
    except ValueError as err:  # e.g. a caption without any word
        raise QueryError(f"the query cannot be searched: {err}") from err


def search_text(model: LoadedModel, query: str, k: int, mode: str) -> dict:
    """``text2image`` / ``text2text`` answer (inputs already checked)."""
    target = check_mode(mode, TEXT_MODES)
    return _answer(model, mode, nearest(model, embed_text(model, query), k, target)[0], target)


def check_photo(data: bytes, limits: Limits) -> bytes:
    """``data`` if it is a JPEG/PNG within the limits (header checks only), else QueryError."""
    try:
        check_image_bytes(data, "photo", limits.max_upload_bytes, limits.max_pixels)
    except ValueError as err:
        status = 413 if len(data) > limits.max_upload_bytes else 400
        raise QueryError(str(err), status) from err
    return data


def search_photo(model: LoadedModel, data: bytes, k: int, mode: str) -> dict:
    """``image2image`` / ``image2text`` answer for a checked photo.

    Raises:
        QueryError: the photo's data is corrupt past a valid header (the decoder refuses it).

    """
    target = check_mode(mode, PHOTO_MODES)
    try:
        embedding = model.client.embed_images([data])
    except ValueError as err:  # the client's own checks, in case they are stricter
        raise QueryError(str(err)) from err
    except ServingInvalidInputError as err:
        logging.info("photo refused by the encoder: %s", err)  # the full message names files
        raise QueryError("photo: the image data is corrupt and cannot be decoded") from err
    return _answer(model, mode, nearest(model, embedding, k, target)[0], target)
