"""Where a collection index lives and what its folder holds (format ``FORMAT_NAME`` v1).

An index is published like a model version, atomically (``serving.publish``)::

    <serving_dir>/collections/<name>/<version>/
      manifest.json              see ``Manifest`` (model, fingerprint, settings, counts, skips)
      photos/ids.npy             unicode [N]     path of each photo relative to the collection
      photos/hashes.npy          unicode [N]     SHA-256 of each photo's bytes (hex)
      photos/captions.npy        unicode [N]     display caption ("" when the photo has none)
      photos/embeddings.npy      float32 [N, d]  unit rows, made by the manifest's model version
      photos/scann/              ScaNN's serialized searcher (only when ScaNN is used)
      captions/ids.npy           unicode [C]     caption ids (``IMAGE.jpg#2``); C may be 0
      captions/texts.npy         unicode [C]
      captions/photo_ids.npy     unicode [C]     the photo of each caption
      captions/embeddings.npy    float32 [C, d]
      captions/scann/            (only when ScaNN is used for the captions)

Arrays are plain ``.npy`` (no pickles). Rows are sorted by id.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from serving.layout import PLAIN_NAME_RULE, is_plain_name

FORMAT_NAME = "xmodal-collection-index"
FORMAT_VERSION = 1
COLLECTIONS_DIR = "collections"
MANIFEST_FILE = "manifest.json"
PHOTOS = "photos"
CAPTIONS = "captions"
SCANN_DIR = "scann"
# The longest index name: it is one folder, and the command line, logs and URLs carry it.
NAME_LONGEST = 64


def check_name(name: str) -> str:
    """Returns ``name`` if it is a plain index name, else raises ValueError saying why."""
    if not is_plain_name(name, NAME_LONGEST):
        raise ValueError(f"--name {name!r} is not a plain name: use 1 to {NAME_LONGEST} "
                         f"{PLAIN_NAME_RULE}")
    return name


def index_base(serving_dir: str, name: str) -> str:
    """The folder of index ``name``'s versions."""
    return os.path.join(serving_dir, COLLECTIONS_DIR, check_name(name))


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What one published index version is and how it was made.

    Attributes:
        name: the index name.
        version: the index version (its folder name).
        model_name: the served encoder whose embeddings these are.
        model_version: that encoder's version; searches with another version are refused.
        collection: the collection's root (folder, glob root or features file) as given.
        source_kind: ``"photos"`` (encoded JPEG/PNG files) or ``"features"`` (a features file).
        captions_file: the Flickr-format captions file, or "" when none was given.
        fingerprint: ``sha256:<hex>`` over the sorted (id, content hash) of every listed item.
        embedding_dim: d.
        counts: listed, indexed, embedded, reused, skipped, deleted, captions, captions_skipped.
        skipped: ``{"file", "reason", "detail"}`` of every item left out (photos, then
            captions, whose ``file`` is the caption id).
        searchers: per part (``photos``, ``captions``), the searcher settings used.
        seconds: wall time of ``embed`` (the Beam job), ``index`` (the build) and ``total``.
        created: Unix time of publication.
        command: the command line that rebuilds this index.

    """

    name: str
    version: int
    model_name: str
    model_version: int
    collection: str
    source_kind: str
    captions_file: str
    fingerprint: str
    embedding_dim: int
    counts: dict[str, int]
    skipped: list[dict[str, str]]
    searchers: dict[str, dict[str, Any]]
    seconds: dict[str, float]
    created: float
    command: str

    def to_json(self) -> str:
        """The manifest file's text."""
        return json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                           **dataclasses.asdict(self)}, indent=2, sort_keys=True)


def write_manifest(manifest: Manifest, directory: str) -> str:
    """Writes ``manifest.json`` into ``directory``; returns its path."""
    path = os.path.join(directory, MANIFEST_FILE)
    with open(path, "w", encoding="utf-8") as out:
        out.write(manifest.to_json())
    return path


def read_manifest(directory: str) -> Manifest:
    """Reads an index version's manifest.

    Raises:
        FileNotFoundError: no manifest in ``directory``.
        ValueError: another format, a newer format version, or missing fields.

    """
    path = os.path.join(directory, MANIFEST_FILE)
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    if values.pop("format", None) != FORMAT_NAME:
        raise ValueError(f"{path}: not a collection index manifest (format is not "
                         f"{FORMAT_NAME!r})")
    version = values.pop("format_version", None)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version!r} is not supported (this reader "
                         f"knows 1..{FORMAT_VERSION})")
    fields = {f.name for f in dataclasses.fields(Manifest)}
    missing = sorted(fields - set(values))
    if missing:
        raise ValueError(f"{path}: missing fields {missing}")
    return Manifest(**{key: values[key] for key in fields})
