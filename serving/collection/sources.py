"""What a collection is: its items (photo files, or rows of a features file) and their captions.

``SRC`` is one of:

* a folder of photos, searched recursively (``photos/`` → every file under it),
* a glob of photos (``photos/**/*.jpg``, ``gs://bucket/photos/*``); ids are relative to the
  glob's folder part,
* an image features file (``X.npy`` [N, D] with ``X.names.txt``, one name per line, as in the
  training data).

Any filesystem Beam reads (local, ``gs://``, ...) holds photos. Every listed file is a candidate:
a file that is no photo is skipped and named in the manifest, never filtered out silently.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import numpy as np
from apache_beam.io.filesystems import FileSystems

from serving.gallery_sources import read_captions_file

PHOTOS = "photos"
FEATURES = "features"
NAMES_SUFFIX = ".names.txt"
_GLOB = re.compile(r"[*?\[]")
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://")
# A caption the model can embed has at least one word character (the ingestion rule).
_WORD = re.compile(r"\w")


@dataclasses.dataclass(frozen=True)
class Listing:
    """The items of a collection, as listed on the launching machine.

    Attributes:
        kind: ``"photos"`` or ``"features"``.
        root: what ids are relative to (folder), or the features file.
        paths: photos: full paths, sorted (parallel to ``ids`` and ``sizes``).
        ids: photo paths relative to ``root``, or the features file's names.
        sizes: photos: file sizes in bytes (-1 when the filesystem does not say).

    """

    kind: str
    root: str
    paths: list[str]
    ids: list[str]
    sizes: list[int]


def _glob_root(pattern: str) -> str:
    """The folder part of a glob: everything before the first path segment with a wildcard."""
    head = _GLOB.split(pattern, maxsplit=1)[0]
    return head[:head.rfind("/") + 1] if "/" in head else ""


def list_collection(src: str) -> Listing:
    """Lists ``src`` (see the module docstring).

    Raises:
        FileNotFoundError: ``src`` does not exist, matches nothing, holds no file or cannot be
            listed.
        ValueError: a single file that is no features file, or a features file whose names
            file names another number of rows.

    """
    if src.endswith(".npy") and not _GLOB.search(src):
        return _list_features(src)
    is_glob = bool(_GLOB.search(src))
    if not is_glob and not FileSystems.exists(src):
        raise FileNotFoundError(f"collection {src!r} does not exist")
    if not is_glob and os.path.isfile(src):
        raise ValueError(f"collection {src!r} is a file: give a folder or glob of photos, or an "
                         "image features .npy")
    root = _glob_root(src) if is_glob else FileSystems.join(src, "")
    try:
        files = sorted(_list_local(src, is_glob) if not _REMOTE.match(src)
                       else _list_remote(src, is_glob))
    except OSError as err:  # Beam's BeamIOError subclasses IOError
        raise FileNotFoundError(f"collection {src!r} cannot be listed: {err}") from err
    if not files:
        raise FileNotFoundError(f"collection {src!r} holds no file")
    ids = [path[len(root):] if root and path.startswith(root) else path for path, _ in files]
    return Listing(PHOTOS, root, [path for path, _ in files], ids, [size for _, size in files])


def _list_local(src: str, is_glob: bool) -> list[tuple[str, int]]:
    """Every entry that is not a folder, by local path.

    A broken link or a file that cannot be read is listed too, so that the job names it as
    skipped: Beam's own listing drops what it cannot stat.
    """
    if is_glob:
        paths = [p for p in glob.glob(src, recursive=True) if not os.path.isdir(p)]
    else:
        paths = []

        def fail(err: OSError) -> None:
            raise err

        for folder, _, names in os.walk(src, onerror=fail):
            paths.extend(os.path.join(folder, name) for name in names)
    return [(path, _size(path)) for path in paths]


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def _list_remote(src: str, is_glob: bool) -> list[tuple[str, int]]:
    pattern = src if is_glob else FileSystems.join(src, "**")
    found = FileSystems.match([pattern])[0].metadata_list
    return [(meta.path, -1 if meta.size_in_bytes is None else int(meta.size_in_bytes))
            for meta in found if not meta.path.endswith("/")]


def _list_features(path: str) -> Listing:
    names_path = path[:-len(".npy")] + NAMES_SUFFIX
    for required in (path, names_path):
        if not FileSystems.exists(required):
            raise FileNotFoundError(f"collection features file {required!r} does not exist")
    with FileSystems.open(names_path) as handle:
        names = [line.strip() for line in handle.read().decode("utf-8-sig").splitlines()
                 if line.strip()]
    rows = read_features(path).shape[0]
    if rows != len(names):
        raise ValueError(f"{path} has {rows} rows but {names_path} names {len(names)} images")
    if not names:
        raise FileNotFoundError(f"collection {path!r} holds no row")
    return Listing(FEATURES, path, [], names, [])


def read_features(path: str) -> np.ndarray:
    """The features matrix [N, D] of a features file (memory-mapped when local).

    Raises:
        ValueError: not a 2-D numeric ``.npy``.

    """
    if not _REMOTE.match(path):
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    else:
        with FileSystems.open(path) as handle:
            matrix = np.load(handle, allow_pickle=False)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise ValueError(f"{path}: expected a numeric [N, D] matrix, got {matrix.dtype} "
                         f"{matrix.shape}")
    return matrix


@dataclasses.dataclass(frozen=True)
class Captions:
    """Captions of a collection's photos, matched by photo id.

    Attributes:
        ids: caption ids (``photo#N``).
        texts: caption texts.
        photo_ids: the photo of each caption (an id of the listing).
        unmatched: captions whose photo is not in the listing.
        skipped: ``{"file", "reason", "detail"}`` of captions without any word.

    """

    ids: list[str]
    texts: list[str]
    photo_ids: list[str]
    unmatched: int
    skipped: list[dict[str, str]]


def read_captions(path: str, photo_ids: list[str]) -> Captions:
    """Reads a Flickr-format captions file (``IMAGE.jpg#N<TAB>caption``) for ``photo_ids``.

    A caption's image is matched to a photo id as written, else to the one photo whose file
    name (last path segment) it is; captions of other images are counted as unmatched.

    Raises:
        ValueError: a malformed line (file and line named).
        FileNotFoundError: no such file.

    """
    by_image = read_captions_file(path)
    known = set(photo_ids)
    by_basename: dict[str, list[str]] = {}
    for photo_id in photo_ids:
        by_basename.setdefault(photo_id.rsplit("/", 1)[-1], []).append(photo_id)
    result = Captions([], [], [], 0, [])
    for image, entries in sorted(by_image.items()):
        owners = [image] if image in known else by_basename.get(image, [])
        if len(owners) != 1:
            result = dataclasses.replace(result, unmatched=result.unmatched + len(entries))
            continue
        for caption_id, text in entries:
            if not _WORD.search(text):
                result.skipped.append({"file": caption_id, "reason": "no_word",
                                       "detail": f"caption {text!r} has no word to embed"})
                continue
            result.ids.append(caption_id)
            result.texts.append(text)
            result.photo_ids.append(owners[0])
    return result
