"""Atomic, versioned publication of SavedModels in TF Serving's layout.

``<base_dir>/<version>/`` with integer versions that only increase. A version folder appears in
one ``os.rename`` of a fully written and fsync'ed hidden folder (``.tmp-...``) on the same
filesystem, so TF Serving (which only watches integer-named folders) never sees half a model.
A publisher killed mid-copy leaves its hidden staging folder behind; ``remove_staging`` clears
those, under ``directory_lock`` so that a live publisher's folder is never mistaken for one.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator

# Hidden staging folders: ``publish_directory``'s copies and the pusher's build folders.
STAGING_PREFIX = ".tmp-"
BUILD_PREFIX = ".build-"


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
    staging = staging_dir(base_dir, version)
    try:
        shutil.copytree(source_dir, staging)
        return publish_staged(staging, base_dir, version)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)


def staging_dir(base_dir: str, version: int) -> str:
    """A new hidden folder name in ``base_dir`` for writing ``version`` before it is published."""
    return os.path.join(base_dir, f"{STAGING_PREFIX}{int(version)}-{uuid.uuid4().hex}")


def publish_staged(staging: str, base_dir: str, version: int) -> str:
    """Publishes a fully written ``staging_dir`` folder as ``<base_dir>/<version>`` atomically.

    The folder is fsync'ed and renamed in place (no copy), so it must be on ``base_dir``'s
    filesystem; use it to publish what is too large to write twice.

    Raises:
        FileExistsError: the version folder already exists (``staging`` is left as it is).

    """
    final = os.path.join(base_dir, str(int(version)))
    if os.path.exists(final):
        raise FileExistsError(f"version folder {final} already exists")
    _fsync_tree(staging)
    os.rename(staging, final)
    _fsync_dir(base_dir)
    return final


def latest_matches(source_dir: str, base_dir: str) -> int | None:
    """The latest published version if its content equals ``source_dir``'s, else None."""
    versions = list_versions(base_dir)
    if not versions:
        return None
    latest = os.path.join(base_dir, str(versions[-1]))
    return versions[-1] if content_hash(latest) == content_hash(source_dir) else None


@contextlib.contextmanager
def directory_lock(directory: str) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``directory`` itself (waits for it), leaving no lock file.

    A second lock on the same folder blocks even within one process: never nest it, nor call
    ``serving.models_config.write_models_config`` (which locks the serving folder) inside it.
    """
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_staging(directory: str) -> list[str]:
    """Removes the hidden staging folders (``.tmp-*``, ``.build-*``) directly in ``directory``.

    Hold ``directory_lock`` of the serving folder while calling it: a publication in progress
    has the same kind of folder.

    Returns:
        The removed folders, sorted (none when ``directory`` is absent).

    """
    if not os.path.isdir(directory):
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if (name.startswith((STAGING_PREFIX, BUILD_PREFIX)) and os.path.isdir(path)
                and not os.path.islink(path)):
            shutil.rmtree(path)
            removed.append(path)
    return removed
