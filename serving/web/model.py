"""One served model version: its encoder client, what it searches, and where that comes from.

A ``LoadedModel`` is immutable once built: the service swaps whole objects when a newer version
is pushed, so a request keeps the version it started with. What it searches is a
``GalleryIndex`` (ids, display captions, captions and the stored embeddings) and a ``Searcher``
over it: the Pusher's eval-split gallery (``GallerySource``) or a collection index.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
from typing import Protocol

import numpy as np
from PIL import Image

from serving.client import EmbeddingClient, LocalBackend, RestBackend
from serving.gallery import GalleryIndex, check_model_version, load_index
from serving.publish import list_versions
from serving.retry import ServingError, ServingNotFoundError
from serving.rouge import RelevanceScorer
from serving.search import GallerySearcher, Hit
from serving.search_model import INDEX_SUBDIR, WARMUP_QUERY, search_model_name
from serving.web.photos import PhotoStore


class Searcher(Protocol):
    """Top-k over one model version's images and captions, for already embedded queries."""

    has_captions: bool

    def images_near(self, embeddings: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k images per unit row [Q, d]."""

    def captions_near(self, embeddings: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k captions per unit row [Q, d]; raises ValueError when there are none."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model version ready to answer queries.

    Attributes:
        name: the served encoder's name.
        version: its version (the index's embeddings were made by it).
        client: embeds queries (in-process or through TF Serving).
        index: ids, captions and stored embeddings of what is searched.
        searcher: top-k over ``index``.
        photos: the photo files of ``index``'s images.
        source: what is searched, for people (``eval-split gallery``, ``collection NAME``).
        key: what orders the loads of its source: the model version for the gallery, the
            index version for a collection index (rebuilt without a new model version).

    """

    name: str
    version: int
    client: EmbeddingClient
    index: GalleryIndex
    searcher: Searcher
    photos: PhotoStore
    source: str
    key: int = -1

    @property
    def load_key(self) -> int:
        """``key`` when set, else ``version``."""
        return self.version if self.key < 0 else self.key

    # Lookup tables, built on first use (Python 3.10's cached_property holds a lock meanwhile).
    @functools.cached_property
    def _rows(self) -> dict[str, int]:
        return {image_id: row for row, image_id in enumerate(self.index.image_ids.tolist())}

    @functools.cached_property
    def _captions(self) -> dict[str, list[str]]:
        pairs: dict[str, list[tuple[str, str]]] = {}
        for caption_id, text, image_id in zip(self.index.caption_ids.tolist(),
                                              self.index.caption_texts.tolist(),
                                              self.index.caption_image_ids.tolist(), strict=True):
            pairs.setdefault(image_id, []).append((caption_id, text))
        return {image_id: [text for _, text in sorted(rows)] for image_id, rows in pairs.items()}

    @functools.cached_property
    def _caption_images(self) -> dict[str, str]:
        return dict(zip(self.index.caption_ids.tolist(), self.index.caption_image_ids.tolist(),
                        strict=True))

    @functools.cached_property
    def _relevance(self) -> RelevanceScorer | None:
        if set(self._captions) != set(self._rows):
            return None
        columns = [self._rows[image_id] for image_id in self.index.caption_image_ids.tolist()]
        return RelevanceScorer(self.index.caption_texts.tolist(), columns,
                               num_images=len(self._rows))

    def image_row(self, image_id: str) -> int | None:
        """The row of ``image_id`` in the index, or None when it is not searched."""
        return self._rows.get(image_id)

    def captions_of(self, image_id: str) -> list[str]:
        """The captions of ``image_id`` in caption-id order ([] when it has none)."""
        return self._captions.get(image_id, [])

    def image_of_caption(self, caption_id: str) -> str:
        """The image id a caption belongs to."""
        return self._caption_images[caption_id]

    def relevance(self) -> RelevanceScorer | None:
        """ROUGE-L relevance of captions to every image (None unless every image has captions)."""
        return self._relevance


def _warmup_photo() -> bytes:
    """A small gray JPEG for the warm-up query of ``embed_image_bytes``."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (128, 128, 128)).save(buffer, format="JPEG")
    return buffer.getvalue()


WARMUP_PHOTO = _warmup_photo()


def warm_up(client: EmbeddingClient) -> None:
    """One caption and one photo through the encoder before it serves.

    The first call of each loaded signature sets its graph up (seconds for the image backbone);
    paid here, before the swap, rather than by the first queries of the new version. An encoder
    without ``embed_image_bytes`` is only warmed up with text (photo queries fail on it).

    Raises:
        ServingError: the encoder cannot embed a caption (e.g. TF Serving does not serve it).

    """
    client.embed_text([WARMUP_QUERY])
    try:
        client.embed_images([WARMUP_PHOTO])
    except ServingError as err:
        if isinstance(err, ServingNotFoundError):
            raise
        logging.warning("photo queries will fail: the encoder cannot embed photos (%s)", err)


class GallerySource:
    """The Pusher's eval-split gallery: ``<serving_dir>/<name>_search/<V>/assets.extra/gallery``.

    Queries are embedded in-process by ``<serving_dir>/<name>/<V>`` (a version counts once both
    folders exist: the Pusher writes the search model first), or, with ``tf_serving_url``, by
    TF Serving's REST API pinned to version V (a version counts once its search folder exists;
    loading it fails until TF Serving answers for it).

    Args:
        serving_dir: the Pusher's serving directory.
        model_name: the served encoder's name.
        photos: the photo folders of the gallery.
        tf_serving_url: TF Serving's REST root (``http://host:8501``), or None for in-process.

    """

    def __init__(self, serving_dir: str, model_name: str, photos: PhotoStore,
                 tf_serving_url: str | None = None):
        self.serving_dir, self.model_name = serving_dir, model_name
        self.photos, self.tf_serving_url = photos, tf_serving_url
        self.search_base = os.path.join(serving_dir, search_model_name(model_name))
        self.hint = ("no pushed model; run the pipeline (python -m pipeline run) so that the "
                     "Pusher publishes one, or pass --serving-dir / --model-name")
        self.encoder_base = os.path.join(serving_dir, model_name)

    def describe(self) -> str:
        """Where versions are looked for, for messages."""
        return self.search_base

    def versions(self) -> list[int]:
        """The versions that can be loaded, ascending."""
        versions = set(list_versions(self.search_base))
        if self.tf_serving_url is None:
            versions &= set(list_versions(self.encoder_base))
        return sorted(versions)

    def load(self, version: int) -> LoadedModel:
        """Loads ``version`` and runs one query through it (graph set-up, TF Serving check).

        Raises:
            FileNotFoundError, ValueError: missing or inconsistent files.
            ServingError: TF Serving does not (yet) answer for this version.

        """
        index = load_index(os.path.join(self.search_base, str(version), INDEX_SUBDIR))
        check_model_version(index, self.model_name, version)
        if self.tf_serving_url is None:
            backend = LocalBackend(os.path.join(self.encoder_base, str(version)))
        else:
            backend = RestBackend(self.tf_serving_url, self.model_name, version)
        client = EmbeddingClient(backend)
        warm_up(client)
        return LoadedModel(self.model_name, version, client, index,
                           GallerySearcher(index, client), self.photos, "eval-split gallery")
