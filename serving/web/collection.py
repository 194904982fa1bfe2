"""A collection index (``python -m pipeline index``) as what the service searches (``--index``).

Each published index version ``<serving_dir>/collections/<name>/<version>/`` is one load: its
photos and captions are searched with the index's own searchers (ScaNN or brute force, as its
manifest says), queries are embedded by the encoder version that built it (in-process, or
through TF Serving pinned to that version), and thumbnails come from the collection's folder
when it is a local one. A rebuilt index (new photos, or a new encoder version after a push) is
a new index version and is picked up without a restart.
"""

from __future__ import annotations

import os

import numpy as np

from serving.client import EmbeddingClient, LocalBackend, RestBackend
from serving.collection import layout, store
from serving.collection.api import check_model
from serving.collection.searcher import Searcher as RowSearcher
from serving.collection.searcher import SearcherSettings, load_searcher
from serving.gallery import GalleryIndex
from serving.publish import list_versions
from serving.search import Hit
from serving.web.model import LoadedModel, warm_up
from serving.web.photos import PhotoStore


class CollectionSearcher:
    """Top-k over an index version's photos and captions (the ``Searcher`` of the service).

    Args:
        photos: the photos part and its searcher.
        captions: the captions part and its searcher, or None.

    """

    def __init__(self, photos: tuple[store.Photos, RowSearcher],
                 captions: tuple[store.CaptionRows, RowSearcher] | None):
        self._photos, self._captions = photos, captions
        self.has_captions = captions is not None

    @staticmethod
    def _hits(searcher: RowSearcher, embeddings: np.ndarray, ids: np.ndarray, texts: np.ndarray,
              k: int) -> list[list[Hit]]:
        scores, rows = searcher.search(embeddings, k)
        return [[Hit(str(ids[r]), float(s), str(texts[r])) for s, r in zip(row_s, row_r,
                                                                          strict=True)]
                for row_s, row_r in zip(scores, rows, strict=True)]

    def images_near(self, embeddings: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k photos per unit row [Q, d]."""
        photos, searcher = self._photos
        return self._hits(searcher, embeddings, photos.ids, photos.captions, k)

    def captions_near(self, embeddings: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k captions per unit row [Q, d] (ValueError when the index has none)."""
        if self._captions is None:
            raise ValueError("this collection index has no captions to search")
        captions, searcher = self._captions
        return self._hits(searcher, embeddings, captions.ids, captions.texts, k)


def _part(directory: str, part: str, rows: np.ndarray, manifest: layout.Manifest) -> RowSearcher:
    settings = SearcherSettings(**manifest.searchers[part])
    return load_searcher(rows, settings, os.path.join(directory, part, layout.SCANN_DIR))


def _as_gallery(manifest: layout.Manifest, photos: store.Photos,
                captions: store.CaptionRows | None) -> GalleryIndex:
    """The lookups the service needs (ids, captions, stored rows) in the gallery's form."""
    width = photos.embeddings.shape[1]
    empty = np.zeros(0, dtype=str)
    return GalleryIndex(
        model_name=manifest.model_name, model_version=manifest.model_version,
        image_ids=photos.ids, image_captions=photos.captions, image_embeddings=photos.embeddings,
        caption_ids=captions.ids if captions else empty,
        caption_texts=captions.texts if captions else empty,
        caption_image_ids=captions.photo_ids if captions else empty,
        caption_embeddings=captions.embeddings if captions else np.zeros((0, width), np.float32),
        source=manifest.collection)


class CollectionSource:
    """The versions of collection index ``name`` (see the module docstring).

    Args:
        serving_dir: the Pusher's serving directory (the index lives under it).
        name: the index name.
        model_name: the served encoder; the index must have been built by it.
        tf_serving_url: TF Serving's REST root, or None to embed in-process.
        photo_dirs: more folders of the photos, after the collection's own (e.g. a local copy
            of a collection in cloud storage).

    """

    def __init__(self, serving_dir: str, name: str, model_name: str,
                 tf_serving_url: str | None = None, photo_dirs: tuple[str, ...] = ()):
        self.serving_dir, self.name, self.model_name = serving_dir, name, model_name
        self.tf_serving_url, self.photo_dirs = tf_serving_url, photo_dirs
        self.base = layout.index_base(serving_dir, name)
        self.hint = (f"no collection index {name!r}; build it with: python -m pipeline index "
                     f"--collection SRC --name {name} --serving-dir {serving_dir}")

    def describe(self) -> str:
        """Where index versions are looked for."""
        return self.base

    def versions(self) -> list[int]:
        """The published index versions, ascending."""
        return list_versions(self.base)

    def load(self, version: int) -> LoadedModel:
        """Loads index version ``version`` and the encoder version that built it.

        Raises:
            FileNotFoundError: missing files, or the encoder version is not pushed (in-process).
            ValueError: the index was built by another model than ``model_name``.
            ServingError: TF Serving does not answer for that encoder version.

        """
        directory = os.path.join(self.base, str(version))
        manifest = layout.read_manifest(directory)
        check_model(manifest, self.model_name, manifest.model_version)
        if self.tf_serving_url is None:
            encoder_dir = os.path.join(self.serving_dir, self.model_name,
                                       str(manifest.model_version))
            if not os.path.isdir(encoder_dir):
                raise FileNotFoundError(f"{directory} was built by {self.model_name} version "
                                        f"{manifest.model_version}, which is not in "
                                        f"{self.serving_dir}")
            backend = LocalBackend(encoder_dir)
        else:
            backend = RestBackend(self.tf_serving_url, self.model_name, manifest.model_version)
        client = EmbeddingClient(backend)
        warm_up(client)
        photos = store.load_photos(directory)
        captions = (store.load_captions(directory) if layout.CAPTIONS in manifest.searchers
                    else None)
        searcher = CollectionSearcher(
            (photos, _part(directory, layout.PHOTOS, photos.embeddings, manifest)),
            None if captions is None else
            (captions, _part(directory, layout.CAPTIONS, captions.embeddings, manifest)))
        return LoadedModel(self.model_name, manifest.model_version, client,
                           _as_gallery(manifest, photos, captions), searcher,
                           PhotoStore([manifest.collection, *self.photo_dirs]),
                           f"collection {self.name}",
                           key=version)
