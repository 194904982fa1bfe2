"""Photo files of the searched images, found safely, and their JPEG thumbnails.

An image id is the photo's path relative to one of the photo folders (as the image featurizer
names its rows, e.g. ``1022454332_6af2c1449a.jpg`` or ``trip/IMG_001.jpg``). Only ids of the
searched gallery or collection are looked up (the caller checks that), and only files that stay
inside a photo folder once links are resolved are read: an id that is absolute, has a ``..``
part, a backslash or a control character is refused before any file system call.
"""

from __future__ import annotations

import functools
import io
import os
import posixpath

from PIL import Image

THUMBNAIL_PX = 256
JPEG_QUALITY = 82
# Decoding a thumbnail's source costs memory in proportion to its pixels: bounded per file.
MAX_SOURCE_PIXELS = 50_000_000
CACHE_ENTRIES = 2048


class BadImageIdError(ValueError):
    """An id that cannot name a file inside a photo folder (absolute, ``..``, ...)."""


def check_image_id(image_id: str) -> str:
    """Returns ``image_id`` when it is a plain relative path, else raises BadImageIdError."""
    if not image_id or len(image_id) > 1024:
        raise BadImageIdError("an image id must have 1 to 1024 characters")
    if "\\" in image_id or any(ord(ch) < 32 or ord(ch) == 127 for ch in image_id):
        raise BadImageIdError("an image id must not contain backslashes or control characters")
    parts = image_id.split("/")
    if image_id.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise BadImageIdError(f"image id {image_id!r} is not a plain relative path (no leading "
                              "'/', no empty, '.' or '..' parts)")
    return image_id


class PhotoStore:
    """Finds photo files in folders and makes cached thumbnails of them.

    Args:
        folders: photo folders, searched in order; missing ones are left out (``missing``).
        size: the longer side of a thumbnail, in pixels.

    """

    def __init__(self, folders: list[str], size: int = THUMBNAIL_PX):
        self.folders = [os.path.realpath(f) for f in folders if os.path.isdir(f)]
        self.missing = [f for f in folders if not os.path.isdir(f)]
        self.size = size
        self._thumbnail = functools.lru_cache(maxsize=CACHE_ENTRIES)(self._make_thumbnail)

    def path_of(self, image_id: str) -> str | None:
        """The file of ``image_id`` inside a photo folder, or None when there is none.

        Raises:
            BadImageIdError: the id is not a plain relative path.

        """
        check_image_id(image_id)
        for folder in self.folders:
            path = os.path.realpath(os.path.join(folder, *image_id.split("/")))
            inside = os.path.commonpath([folder, path]) == folder
            if inside and os.path.isfile(path):
                return path
        return None

    def has_photo(self, image_id: str) -> bool:
        """Whether ``image_id`` has a file (False for an id that cannot name one)."""
        try:
            return self.path_of(image_id) is not None
        except BadImageIdError:
            return False

    def thumbnail(self, path: str) -> bytes:
        """JPEG bytes of the photo at ``path`` scaled to fit the thumbnail size (cached).

        Raises:
            ValueError: the file is not an image PIL can decode, or has too many pixels.

        """
        stat = os.stat(path)
        return self._thumbnail(path, stat.st_mtime_ns, stat.st_size)

    def _make_thumbnail(self, path: str, mtime_ns: int, size_bytes: int) -> bytes:
        del mtime_ns, size_bytes  # cache key only: a changed file gets a new thumbnail
        try:
            with Image.open(path) as image:
                if image.width * image.height > MAX_SOURCE_PIXELS:
                    raise ValueError(f"{posixpath.basename(path)}: {image.width}x{image.height} "
                                     f"is over {MAX_SOURCE_PIXELS} pixels")
                image.draft("RGB", (self.size, self.size))  # JPEG: decode at a reduced scale
                small = image.convert("RGB")
                small.thumbnail((self.size, self.size))
        except (OSError, Image.DecompressionBombError) as err:
            raise ValueError(f"{posixpath.basename(path)} is not a readable image ({err})") from err
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue()
