"""Thumbnails of the qualitative panel's result images, embedded as JPEG data URIs.

Embedding keeps ``index.html`` a single file that can be mailed or archived. The size stays
bounded: only the images shown in the panel (queries x top-5) are embedded, each scaled to fit
``THUMBNAIL_PX`` square and JPEG-compressed (a few KB each). A missing or unreadable image file
never fails the report: that result keeps its file name alone and is counted in a note.

Where the images come from: the pipeline passes a folder as the EvalReport's ``images_dir``
execution property (``find_images_dir``: ``--images``, else the data's ``dev_images/`` or
``images/`` folder); an
image id is the file's path relative to it, as the image featurizer names its feature rows. An id
or a symlink that leads out of the folder is not read: that result is shown by name.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import posixpath
from collections.abc import Iterable, Mapping

from PIL import Image

THUMBNAIL_PX = 112
JPEG_QUALITY = 80
DATA_URI_PREFIX = "data:image/jpeg;base64,"
IMAGES_SUBDIR = "images"
# The eval split's photos come first: the panel shows eval-split results, and a dataset may keep
# only some (e.g. train) photos in images/ (Flickr8k in ../shared does).
DATA_IMAGE_SUBDIRS = ("dev_images", IMAGES_SUBDIR)


@dataclasses.dataclass(frozen=True)
class Thumbnails:
    """The embedded thumbnails of one report.

    Attributes:
      images_dir: the folder they were read from ("" when the run had no images).
      uris: image id -> ``data:image/jpeg;base64,...``.
      unavailable: ids whose file is missing, not a readable image, or outside ``images_dir``
        (the id or a symlink leads out of it), sorted.

    """

    images_dir: str
    uris: Mapping[str, str]
    unavailable: tuple[str, ...] = ()

    def note(self) -> str:
        """One line for the report's notes: where thumbnails come from and what is missing."""
        if not self.images_dir:
            return ("result images are shown by name: no images folder (pass --images, or put "
                    f"a {' or '.join(d + '/' for d in DATA_IMAGE_SUBDIRS)} folder in the data)")
        line = f"thumbnails of {len(self.uris)} result images from {self.images_dir}"
        if self.unavailable:
            line += (f"; {len(self.unavailable)} missing, unreadable or outside the folder, "
                     f"shown by name (e.g. {self.unavailable[0]})")
        return line


def find_images_dir(images_dir: str | None, data_dir: str) -> str:
    """The folder the report takes images from: ``images_dir``, else one in ``data_dir``.

    That is the first of ``<data_dir>/dev_images`` and ``<data_dir>/images`` that exists. Only a
    local ``data_dir`` is looked into (a cloud URI is not touched while building the pipeline);
    returns "" when there is no such folder.
    """
    if images_dir:
        return images_dir
    if "://" in data_dir:
        return ""
    candidates = [os.path.join(data_dir, sub) for sub in DATA_IMAGE_SUBDIRS]
    return next((path for path in candidates if os.path.isdir(path)), "")


def thumbnail_uri(data: bytes, size: int = THUMBNAIL_PX) -> str:
    """A JPEG data URI of an encoded image scaled to fit ``size`` x ``size`` (aspect kept).

    Raises:
      ValueError: ``data`` is not an image PIL can decode (truncated, corrupt, unknown format).

    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            small = image.convert("RGB")
            small.thumbnail((size, size))
    except (OSError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is OSError
        raise ValueError(f"not a readable image ({err})") from err
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return DATA_URI_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_path(images_dir: str, image_id: str) -> str | None:
    """The file of ``image_id``, or None when the id or a symlink on its path leaves the folder.

    A local path is resolved (``os.path.realpath``) and must stay under the resolved folder, so a
    link inside the folder to a file elsewhere (``/etc/...``, a private photo) is never read into
    a report that may be mailed. Cloud storage has no links: its paths are only joined.
    """
    normalized = posixpath.normpath(image_id)
    if normalized.startswith(("/", "..")) or not image_id:
        return None
    path = posixpath.join(images_dir.rstrip("/"), normalized)
    if "://" in images_dir:
        return path
    root, real = os.path.realpath(images_dir), os.path.realpath(path)
    return real if os.path.commonpath([root, real]) == root else None


def _read(path: str | None) -> bytes | None:
    """The file's bytes, or None when there is no readable file (a folder, permissions)."""
    import tensorflow as tf  # lazy: the pipeline imports find_images_dir while it is built

    if path is None:
        return None
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except tf.errors.OpError:  # NotFoundError, FailedPreconditionError (a folder), ...
        return None


def _thumbnail_or_none(images_dir: str, image_id: str, size: int) -> str | None:
    data = _read(_image_path(images_dir, image_id))
    if data is None:
        return None
    try:
        return thumbnail_uri(data, size)
    except ValueError:
        return None


def load_thumbnails(images_dir: str, image_ids: Iterable[str],
                    size: int = THUMBNAIL_PX) -> Thumbnails:
    """Thumbnails of ``image_ids`` from ``images_dir`` (each id read once).

    Args:
      images_dir: the images folder (local or any ``tf.io.gfile`` URI); "" for none.
      image_ids: ids of the shown images (file paths relative to ``images_dir``).
      size: the longer side of a thumbnail, in pixels.

    Returns:
      The thumbnails; ids without a readable image file are listed in ``unavailable``.

    """
    if not images_dir:
        return Thumbnails("", {})
    uris, unavailable = {}, []
    for image_id in sorted(set(image_ids)):
        uri = _thumbnail_or_none(images_dir, image_id, size)
        if uri is None:
            unavailable.append(image_id)
        else:
            uris[image_id] = uri
    return Thumbnails(images_dir, uris, tuple(unavailable))
