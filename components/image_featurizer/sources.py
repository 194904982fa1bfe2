"""Listing the image files of a folder, and a cheap fingerprint of that listing."""

from __future__ import annotations

import hashlib

from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems


def list_image_files(images_dir: str) -> list[FileMetadata]:
    """The files directly inside ``images_dir`` (any Beam filesystem), sorted by path.

    Every file is a candidate: files that are not images are skipped and reported later, not
    filtered here by extension. Sub-folders are not descended into.

    Raises:
      FileNotFoundError: when ``images_dir`` does not exist or holds no file.

    """
    if not FileSystems.exists(images_dir):
        raise FileNotFoundError(f"images folder {images_dir!r} does not exist")
    pattern = FileSystems.join(images_dir, "*")
    found = FileSystems.match([pattern])[0].metadata_list
    files = sorted(found, key=lambda meta: meta.path)
    if not files:
        raise FileNotFoundError(f"images folder {images_dir!r} holds no file")
    return files


def relative_name(images_dir: str, path: str) -> str:
    """The file name of ``path`` relative to ``images_dir`` (the features' row key)."""
    prefix = FileSystems.join(images_dir, "")
    if not path.startswith(prefix):
        raise ValueError(f"{path!r} is not inside the images folder {images_dir!r}")
    return path[len(prefix) :]


def images_fingerprint(images_dir: str) -> str:
    """A cheap fingerprint of an images folder: names, sizes and modification times.

    No file is read, so new, removed, replaced or touched images change it; the pipeline puts it
    into the ExampleGen's custom config to bust TFX's cache when the images change.

    Returns:
      ``"sha256:<hex>"`` over the sorted ``name, size, mtime`` lines.

    """
    digest = hashlib.sha256()
    for meta in list_image_files(images_dir):
        name = relative_name(images_dir, meta.path)
        digest.update(f"{name}\t{meta.size_in_bytes}\t{meta.last_updated_in_seconds}\n".encode())
    return f"sha256:{digest.hexdigest()}"
