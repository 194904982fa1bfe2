"""Searching a published collection index from Python (the CLI and the search service use it).

::

    index = open_index("runs/serving", "photos")        # latest index version of "photos"
    for hit in index.search_text("a dog runs on the beach", k=10):
        print(hit.rank, hit.score, hit.photo_id, hit.path, hit.caption)
    index.search_image(open("query.jpg", "rb").read(), k=10)
    index.search_text_to_text("a dog runs", k=10)       # captions; needs an index with captions

``open_index`` refuses (``StaleIndexError``) an index made by another encoder version than the
one served (the latest pushed, or the one asked for): embeddings of two versions are not
comparable. The error carries the command that rebuilds the index. Queries are embedded by the
pushed encoder in this process; a ``CollectionIndex`` may be shared between threads.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from serving.client import EmbeddingClient, LocalBackend
from serving.collection import layout, store
from serving.collection.searcher import Searcher, SearcherSettings, load_searcher
from serving.publish import list_versions
from serving.retry import ServingError
from serving.validation import check_image_bytes


class StaleIndexError(ValueError):
    """The index was made by another encoder version than the one it would be searched with.

    Attributes:
        rebuild_command: the command line that rebuilds the index with the served version.

    """

    def __init__(self, message: str, rebuild_command: str):
        super().__init__(f"{message}; rebuild it with: {rebuild_command}")
        self.rebuild_command = rebuild_command


@dataclasses.dataclass(frozen=True)
class Hit:
    """One result.

    Attributes:
        rank: 1 for the best.
        score: cosine similarity (dot product of unit rows).
        photo_id: the photo's path relative to the collection.
        path: where the photo is (collection root + ``photo_id``; a local path or a URI).
        caption: the photo's display caption ("" when none), or, for text→text, the matched
            caption's text.
        caption_id: the matched caption's id (text→text only, else "").

    """

    rank: int
    score: float
    photo_id: str
    path: str
    caption: str
    caption_id: str = ""


def latest_index_dir(serving_dir: str, name: str) -> str:
    """The folder of index ``name``'s latest version.

    Raises:
        ValueError: ``name`` is not a plain name.
        FileNotFoundError: no version of it is published.

    """
    base = layout.index_base(serving_dir, name)
    versions = list_versions(base)
    if not versions:
        raise FileNotFoundError(f"no collection index {name!r} under {base}; build it with: "
                                f"python -m pipeline index --collection SRC --name {name} "
                                f"--serving-dir {serving_dir}")
    return os.path.join(base, str(versions[-1]))


def served_version(serving_dir: str, model_name: str) -> int:
    """The latest pushed version of encoder ``model_name``.

    Raises:
        FileNotFoundError: none is pushed.

    """
    versions = list_versions(os.path.join(serving_dir, model_name))
    if not versions:
        raise FileNotFoundError(f"no pushed version of model {model_name!r} under "
                                f"{os.path.join(serving_dir, model_name)}; run the pipeline so "
                                "that the Pusher publishes one")
    return versions[-1]


class CollectionIndex:
    """A published index version, its searchers and the encoder that embeds the queries.

    Use ``open_index``. Attributes: ``name``, ``version``, ``directory``, ``manifest``,
    ``model_name``, ``model_version``, ``collection`` (the root that photo ids are relative
    to), ``photos`` (``store.Photos``), ``captions`` (``store.CaptionRows`` or None).
    """

    def __init__(self, directory: str, manifest: layout.Manifest, encoder_dir: str):
        self.directory, self.manifest = directory, manifest
        self.name, self.version = manifest.name, manifest.version
        self.model_name, self.model_version = manifest.model_name, manifest.model_version
        self.collection = manifest.collection
        self.photos = store.load_photos(directory)
        self._photo_searcher = _open_part(directory, layout.PHOTOS, self.photos.embeddings,
                                          manifest)
        self.captions = None
        self._caption_searcher = None
        if layout.CAPTIONS in manifest.searchers:
            self.captions = store.load_captions(directory)
            self._caption_searcher = _open_part(directory, layout.CAPTIONS,
                                                self.captions.embeddings, manifest)
        self._client = EmbeddingClient(LocalBackend(encoder_dir))
        self._row = {photo_id: row for row, photo_id in enumerate(self.photos.ids.tolist())}

    @property
    def num_photos(self) -> int:
        """Photos in the index."""
        return len(self.photos.ids)

    def photo_path(self, photo_id: str) -> str:
        """Where photo ``photo_id`` is (KeyError when it is not in the index)."""
        if photo_id not in self._row:
            raise KeyError(f"photo {photo_id!r} is not in index {self.name!r}")
        return _join(self.collection, photo_id)

    def caption_of(self, photo_id: str) -> str:
        """The display caption of photo ``photo_id`` ("" when it has none)."""
        return str(self.photos.captions[self._row[photo_id]])

    def search_text(self, query: str, k: int = 10) -> list[Hit]:
        """The ``k`` photos nearest to a caption (ValueError for an empty or wordless query)."""
        return self._photo_hits(self._client.embed_text([query]), k)

    def search_image(self, photo: bytes, k: int = 10, name: str = "photo") -> list[Hit]:
        """The ``k`` photos nearest to an encoded JPEG/PNG photo.

        Raises:
            ValueError: naming ``name``: empty, not a JPEG/PNG, truncated, too large or corrupt.

        """
        check_image_bytes(photo, name)
        try:
            query = self._client.embed_images([photo])
        except ServingError as err:
            raise ValueError(f"{name}: cannot be searched: {err}") from err
        return self._photo_hits(query, k)

    def search_text_to_text(self, query: str, k: int = 10) -> list[Hit]:
        """The ``k`` captions nearest to a caption (ValueError when the index has none)."""
        if self._caption_searcher is None:
            raise ValueError(f"index {self.name!r} holds no captions: rebuild it with "
                             "--captions FILE for text-to-text search")
        scores, rows = self._caption_searcher.search(self._client.embed_text([query]), k)
        hits = []
        for rank, (score, row) in enumerate(zip(scores[0], rows[0], strict=True), start=1):
            photo_id = str(self.captions.photo_ids[row])
            hits.append(Hit(rank, float(score), photo_id, _join(self.collection, photo_id),
                            str(self.captions.texts[row]), str(self.captions.ids[row])))
        return hits

    def search_embeddings(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Photo rows nearest to unit query rows [Q, d]: ``(scores, rows)`` [Q, k'] each."""
        return self._photo_searcher.search(queries, k)

    def _photo_hits(self, query: np.ndarray, k: int) -> list[Hit]:
        scores, rows = self._photo_searcher.search(query, k)
        return [Hit(rank, float(score), str(self.photos.ids[row]),
                    _join(self.collection, str(self.photos.ids[row])),
                    str(self.photos.captions[row]))
                for rank, (score, row) in enumerate(zip(scores[0], rows[0], strict=True),
                                                    start=1)]


def _join(root: str, photo_id: str) -> str:
    return root + photo_id if root.endswith("/") else os.path.join(root, photo_id)


def _open_part(directory: str, part: str, rows: np.ndarray,
               manifest: layout.Manifest) -> Searcher:
    settings = SearcherSettings(**manifest.searchers[part])
    return load_searcher(rows, settings, os.path.join(directory, part, layout.SCANN_DIR))


def check_model(manifest: layout.Manifest, model_name: str, model_version: int) -> None:
    """Raises StaleIndexError unless ``manifest`` was made by this encoder version."""
    if (manifest.model_name, int(manifest.model_version)) != (model_name, int(model_version)):
        raise StaleIndexError(
            f"collection index {manifest.name!r} (version {manifest.version}) was built with "
            f"{manifest.model_name} version {manifest.model_version}, not {model_name} "
            f"version {model_version}", manifest.command)


def open_index(serving_dir: str, name: str, model_name: str | None = None,
               model_version: int | None = None) -> CollectionIndex:
    """Opens the latest version of collection index ``name`` for searching.

    Args:
        serving_dir: the Pusher's serving directory.
        name: the index name (``--name`` of ``python -m pipeline index``).
        model_name: the encoder to search with (default: the one the index was made by).
        model_version: its version (default: the latest pushed, i.e. the one served).

    Raises:
        FileNotFoundError: no such index, or no pushed encoder.
        StaleIndexError: the index was made by another encoder or version.
        ValueError: ``name`` is not a plain name, or the index files are inconsistent.

    """
    directory = latest_index_dir(serving_dir, name)
    manifest = layout.read_manifest(directory)
    model_name = model_name or manifest.model_name
    if model_version is None:
        model_version = served_version(serving_dir, model_name)
    check_model(manifest, model_name, model_version)
    encoder_dir = os.path.join(serving_dir, model_name, str(model_version))
    if not os.path.isdir(encoder_dir):
        raise FileNotFoundError(f"model {model_name} version {model_version} is not under "
                                f"{serving_dir}")
    return CollectionIndex(directory, manifest, encoder_dir)

