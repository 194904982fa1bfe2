"""Keeps the latest loadable version of one model and swaps in newer ones without a restart.

A background thread looks for new versions every ``poll_s`` seconds. A new version is loaded
beside the serving one and replaces it in one reference assignment, so no request sees half a
model and none fails during the swap: requests that started on the old version finish on it. A
version that fails to load (files still being written elsewhere, TF Serving not serving it yet)
is logged and tried again after ``retry_failed_s``; the old version keeps serving meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import tensorflow as tf

from serving.retry import ServingError, ServingNotFoundError
from serving.web.model import LoadedModel

T = TypeVar("T")
DEFAULT_POLL_S = 2.0
RETRY_FAILED_S = 30.0
_LOAD_ERRORS = (FileNotFoundError, ValueError, OSError, ServingError, tf.errors.OpError)


class ModelSource(Protocol):
    """Lists and loads the versions of one model (``GallerySource``, ``CollectionSource``)."""

    hint: str  # what makes a first version appear, for the error when there is none

    def describe(self) -> str:
        """Where versions are looked for, for messages."""

    def versions(self) -> list[int]:
        """Loadable versions, ascending."""

    def load(self, version: int) -> LoadedModel:
        """The loaded version (raises on missing or bad files, or an unreachable server)."""


class ModelHolder:
    """The current ``LoadedModel`` of a source, refreshed in the background.

    Args:
        source: where versions come from.
        poll_s: seconds between looks for a newer version.

    """

    def __init__(self, source: ModelSource, poll_s: float = DEFAULT_POLL_S):
        self.source, self.poll_s = source, poll_s
        self._current: LoadedModel | None = None
        self._load_lock = threading.Lock()
        self._failed: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0

    @property
    def current(self) -> LoadedModel:
        """The serving version (``load_latest`` must have succeeded)."""
        if self._current is None:
            raise RuntimeError("ModelHolder.load_latest() was not called")
        return self._current

    def load_latest(self) -> LoadedModel:
        """Loads the latest version; at start-up, a failure is final.

        Raises:
            FileNotFoundError: no version is there.
            ValueError, OSError, ServingError: the latest version cannot be loaded.

        """
        versions = self.source.versions()
        if not versions:
            raise FileNotFoundError(f"nothing to serve under {self.source.describe()}: "
                                    f"{self.source.hint}")
        self._current = self.source.load(versions[-1])
        return self._current

    def refresh(self, force: bool = False) -> LoadedModel:
        """Swaps in the newest loadable version if it is newer; returns the current one.

        Args:
            force: try versions that failed recently too.

        """
        with self._load_lock:
            current = self.current
            for version in reversed(self.source.versions()):
                if version <= current.load_key:
                    break
                if not force and time.monotonic() < self._failed.get(version, 0.0):
                    continue
                try:
                    loaded = self.source.load(version)
                except _LOAD_ERRORS as err:
                    logging.warning("%s version %d not loaded (serving version %d): %s",
                                    self.source.describe(), version, current.load_key, err)
                    self._failed[version] = time.monotonic() + RETRY_FAILED_S
                    continue
                self._current, self.swaps = loaded, self.swaps + 1
                logging.info("%s: now serving version %d (was %d)", self.source.describe(),
                             version, current.load_key)
                break
            return self.current

    def call(self, query: Callable[[LoadedModel], T]) -> T:
        """Runs ``query`` on the current version (once more on a newer one, see below).

        TF Serving's version policy unloads an old version once a newer one is served; a query
        pinned to the old one then fails with NOT_FOUND, and runs again on the newer version.
        """
        model = self.current
        try:
            return query(model)
        except ServingNotFoundError:
            newer = self.refresh(force=True)
            if newer is model:
                raise
            return query(newer)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def start(self) -> None:
        """Starts looking for new versions in a daemon thread."""
        self._thread = threading.Thread(target=self._poll, name="model-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.poll_s, 1.0) * 2)
