"""Bounded reads of image files given by path, for the client and ``search --image``.

A path can name anything: ``/dev/zero``, a FIFO with no writer, a 2 GiB video. The reader here
checks what the path is and how large it is on the open descriptor before reading, and never
reads more than the limit plus one byte, so memory stays bounded by the limit.
"""

import os
import stat

# Per encoded image. Larger files are almost always a mistake (a RAW photo, a video frame dump)
# and would exceed gRPC's default 4 MiB message limit in one request anyway.
DEFAULT_MAX_IMAGE_BYTES = 4 * 1024 * 1024

# What a path that is not a regular file is, for the refusal message (``stat.S_IFMT`` kinds).
_FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFIFO: "a named pipe",
               stat.S_IFSOCK: "a socket"}


def read_photo_file(path: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a photo file, read only when it is a regular file of at most ``max_bytes``.

    The file is opened without blocking (a named pipe with no writer cannot hang the caller) and
    its kind and size are checked on the open descriptor before any byte is read; then at most
    ``max_bytes + 1`` bytes are read, so a file that grows after the check is refused too. Memory
    stays bounded by ``max_bytes`` whatever ``path`` names (``/dev/zero``, a 2 GiB video, a
    FIFO). The contents are not checked: see ``serving.validation.check_image_bytes``.

    Args:
        path: the file (a symlink is followed).
        max_bytes: the largest accepted file.

    Returns:
        The whole file.

    Raises:
        ValueError: naming ``path``: it cannot be opened, is not a regular file (a directory, a
            device, a FIFO, a socket), or is larger than ``max_bytes``.

    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise ValueError(f"{path}: not a regular file ({kind}); give a JPEG or PNG file")
        if info.st_size > max_bytes:
            raise ValueError(f"{path}: {info.st_size} bytes is over the limit of {max_bytes} "
                             "bytes")
        data = _read_at_most(fd, max_bytes + 1, path)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: over the limit of {max_bytes} bytes (it grew while being "
                         "read)")
    return data


def _read_at_most(fd: int, limit: int, path: str) -> bytes:
    """Up to ``limit`` bytes of ``fd`` (fewer at the end of the file)."""
    chunks, size = [], 0
    try:
        while size < limit:
            chunk = os.read(fd, limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err.strerror or err}") from err
    return b"".join(chunks)
