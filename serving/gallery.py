"""The gallery index: embeddings + ids of a collection, tied to the model version that made them.

On-disk format (``FORMAT_NAME`` version ``FORMAT_VERSION``), one folder::

    index.json                 {"format", "format_version", "model_name", "model_version",
                                "embedding_dim", "num_images", "num_captions", "source"}
    image_ids.npy              unicode [N_i]      unique image ids (e.g. file names)
    image_captions.npy         unicode [N_i]      one caption per image for display ("" if none)
    image_embeddings.npy       float32 [N_i, d]   L2-normalized rows
    caption_ids.npy            unicode [N_c]      caption ids (e.g. "IMAGE.jpg#2")
    caption_texts.npy          unicode [N_c]      raw caption texts
    caption_image_ids.npy      unicode [N_c]      the image of each caption
    caption_embeddings.npy     float32 [N_c, d]   L2-normalized rows (N_c may be 0)

Arrays are plain ``.npy`` (no pickles). A reader refuses another format or a newer version, and an
index whose model version differs from the model it is used with (see ``check_model_version``).
"""

import dataclasses
import json
import os
from typing import Any

import numpy as np

from serving.client import EmbeddingClient
from serving.gallery_sources import GalleryRecords, load_array

FORMAT_NAME = "xmodal-gallery-index"
FORMAT_VERSION = 1
METADATA_FILE = "index.json"
_ARRAYS = ("image_ids", "image_captions", "image_embeddings", "caption_ids", "caption_texts",
           "caption_image_ids", "caption_embeddings")
_UNIT_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True, eq=False)
class GalleryIndex:
    """Embedded images (and captions) of one collection, made by one model version.

    Attributes:
        model_name: the served encoder's name.
        model_version: the encoder version that computed the embeddings.
        image_ids: unicode [N_i], unique.
        image_captions: unicode [N_i], a display caption per image.
        image_embeddings: float32 [N_i, d], unit rows.
        caption_ids: unicode [N_c].
        caption_texts: unicode [N_c].
        caption_image_ids: unicode [N_c].
        caption_embeddings: float32 [N_c, d], unit rows.
        source: where the collection came from (free text, for people).

    """

    model_name: str
    model_version: int
    image_ids: np.ndarray
    image_captions: np.ndarray
    image_embeddings: np.ndarray
    caption_ids: np.ndarray
    caption_texts: np.ndarray
    caption_image_ids: np.ndarray
    caption_embeddings: np.ndarray
    source: str = ""

    def __post_init__(self):
        _check_rows("image", self.image_embeddings, self.image_ids, self.image_captions)
        _check_rows("caption", self.caption_embeddings, self.caption_ids, self.caption_texts,
                    self.caption_image_ids)
        if len(self.image_ids) == 0:
            raise ValueError("a gallery index needs at least one image")
        if self.caption_embeddings.shape[1] != self.embedding_dim:
            raise ValueError(f"caption embeddings have width {self.caption_embeddings.shape[1]}, "
                             f"image embeddings {self.embedding_dim}")
        if len(set(self.image_ids.tolist())) != len(self.image_ids):
            raise ValueError("gallery image_ids are not unique")

    @property
    def embedding_dim(self) -> int:
        """The embedding width d."""
        return int(self.image_embeddings.shape[1])


def _check_rows(kind: str, embeddings: np.ndarray, *columns: np.ndarray) -> None:
    """Checks that ``embeddings`` is [N, d] float32 of finite unit rows matching ``columns``."""
    if embeddings.ndim != 2 or embeddings.dtype != np.float32:
        raise ValueError(f"{kind} embeddings must be float32 [N, d], got {embeddings.dtype} "
                         f"{embeddings.shape}")
    for column in columns:
        if column.shape != (embeddings.shape[0],):
            raise ValueError(f"{kind} column of shape {column.shape} does not match "
                             f"{embeddings.shape[0]} embeddings")
    norms = np.linalg.norm(embeddings, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (np.abs(norms - 1.0) > _UNIT_TOLERANCE))
    if bad.size:
        raise ValueError(f"{kind} embedding row {bad[0]} is not a finite unit vector "
                         f"(norm {norms[bad[0]]}); {bad.size} such rows")


def save_index(index: GalleryIndex, directory: str) -> None:
    """Writes ``index`` into ``directory`` (created) in the documented format."""
    os.makedirs(directory, exist_ok=True)
    for name in _ARRAYS:
        value = getattr(index, name)
        array = value if value.dtype == np.float32 else np.asarray(value.tolist(), dtype=str)
        np.save(os.path.join(directory, f"{name}.npy"), array, allow_pickle=False)
    metadata = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "model_name": index.model_name, "model_version": int(index.model_version),
        "embedding_dim": index.embedding_dim, "num_images": len(index.image_ids),
        "num_captions": len(index.caption_ids), "source": index.source,
    }
    with open(os.path.join(directory, METADATA_FILE), "w", encoding="utf-8") as out:
        json.dump(metadata, out, indent=2)


def _read_metadata(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, METADATA_FILE)
    with open(path, encoding="utf-8") as f:
        try:
            metadata = json.load(f)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"{path}: not a JSON index description ({err})") from err
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(metadata).__name__}")
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: format is {metadata.get('format')!r}, expected {FORMAT_NAME!r}")
    version = metadata.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version!r} is not supported "
                         f"(this reader knows 1..{FORMAT_VERSION})")
    return metadata


def load_index(directory: str) -> GalleryIndex:
    """Reads an index written by ``save_index``.

    Raises:
        ValueError: another format, an unsupported version, an array file that is pickled or
            unreadable (named), or inconsistent arrays.
        FileNotFoundError: a file is missing.

    """
    metadata = _read_metadata(directory)
    arrays = {name: load_array(os.path.join(directory, f"{name}.npy")) for name in _ARRAYS}
    arrays["caption_embeddings"] = arrays["caption_embeddings"].reshape(
        -1, metadata["embedding_dim"])
    return GalleryIndex(model_name=metadata["model_name"],
                        model_version=metadata["model_version"], source=metadata["source"],
                        **arrays)


def check_model_version(index: GalleryIndex, model_name: str, model_version: int) -> None:
    """Raises ValueError unless ``index`` was made by ``model_name`` version ``model_version``."""
    if (index.model_name, int(index.model_version)) != (model_name, int(model_version)):
        raise ValueError(f"gallery index was built with {index.model_name} version "
                         f"{index.model_version}, not {model_name} version {model_version}; "
                         "rebuild it with the model you serve")


def build_index(records: GalleryRecords, client: EmbeddingClient, model_name: str,
                model_version: int) -> GalleryIndex:
    """Embeds a collection with the pushed encoder.

    Args:
        records: the images (features) and captions of the collection.
        client: an embedding client of the encoder (``LocalBackend`` or a server).
        model_name: the encoder's served name (recorded in the index).
        model_version: the encoder's version (recorded in the index).

    Returns:
        The index; captions are embedded only when ``records`` has some.

    """
    image_embeddings = client.embed_image(records.image_features).astype(np.float32)
    if records.caption_ids:
        caption_embeddings = client.embed_text(records.caption_texts).astype(np.float32)
    else:
        caption_embeddings = np.zeros((0, image_embeddings.shape[1]), np.float32)
    return GalleryIndex(
        model_name=model_name, model_version=model_version,
        image_ids=np.asarray(records.image_ids, dtype=str),
        image_captions=np.asarray(records.image_captions, dtype=str),
        image_embeddings=image_embeddings,
        caption_ids=np.asarray(records.caption_ids, dtype=str),
        caption_texts=np.asarray(records.caption_texts, dtype=str),
        caption_image_ids=np.asarray(records.caption_image_ids, dtype=str),
        caption_embeddings=caption_embeddings, source=records.source)
