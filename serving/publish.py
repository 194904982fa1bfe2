"""Atomic, versioned publication of SavedModels in TF Serving's layout.

``<base_dir>/<version>/`` with integer versions that only increase. A version folder appears in
one ``os.rename`` of a fully written and fsync'ed hidden folder (``.tmp-...``) on the same
filesystem, so TF Serving (which only watches integer-named folders) never sees half a model.
"""

import hashlib
import os
import shutil
import time
import uuid


def list_versions(base_dir: str) -> list[int]:
    """The integer version folders under ``base_dir``, ascending (none when it is absent)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(base_dir, name)))


def next_version(existing: list[int], now: float | None = None) -> int:
    """A new version: the Unix time in seconds, or one more than the highest existing version.

    Args:
        existing: versions already published.
        now: the current Unix time (default ``time.time()``).

    Returns:
        ``max(int(now), max(existing) + 1)``.

    """
    now_s = int(time.time() if now is None else now)
    return max([now_s, *(v + 1 for v in existing)])


def content_hash(directory: str) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``directory`` (sorted)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode("utf-8") + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
    return digest.hexdigest()


def _fsync_tree(directory: str) -> None:
    """Fsyncs every file and folder under ``directory`` (folders after their content)."""
    for root, _, files in os.walk(directory, topdown=False):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_directory(source_dir: str, base_dir: str, version: int) -> str:
    """Copies ``source_dir`` to ``<base_dir>/<version>`` atomically.

    Args:
        source_dir: a complete SavedModel folder.
        base_dir: the model's base path (created when absent).
        version: the new version; its folder must not exist yet.

    Returns:
        The published folder.

    Raises:
        FileExistsError: the version folder already exists.
        FileNotFoundError: ``source_dir`` is not a folder.

    """
    if not os.path.isdir(source_dir):
        raise FileNotFoundError(f"cannot publish {source_dir}: not a folder")
    os.makedirs(base_dir, exist_ok=True)
    final = os.path.join(base_dir, str(int(version)))
    if os.path.exists(final):
        raise FileExistsError(f"version folder {final} already exists")
    staging = os.path.join(base_dir, f".tmp-{int(version)}-{uuid.uuid4().hex}")
    try:
        shutil.copytree(source_dir, staging)
        _fsync_tree(staging)
        os.rename(staging, final)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    _fsync_dir(base_dir)
    return final


def latest_matches(source_dir: str, base_dir: str) -> int | None:
    """The latest published version if its content equals ``source_dir``'s, else None."""
    versions = list_versions(base_dir)
    if not versions:
        return None
    latest = os.path.join(base_dir, str(versions[-1]))
    return versions[-1] if content_hash(latest) == content_hash(source_dir) else None
