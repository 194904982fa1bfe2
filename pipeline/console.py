"""What a pipeline run shows on the terminal: progress, the summary and one line per error.

Everything else that a run writes to stderr goes to the run's TFX log file instead: TensorFlow's
C++ logging (CUDA plugin registrations) writes to file descriptor 2 directly, and Python warnings,
absl and Beam's logging write to ``sys.stderr``; redirecting the descriptor catches all of them,
including what child processes write. Progress and the summary are printed to stdout, which stays
on the terminal. ``search`` is routed the same way, into one log file of its own.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import TextIO


def new_log_path(pipeline_root: str) -> str:
    """A fresh, timestamped TFX log file path under ``<pipeline_root>/logs/``."""
    return os.path.join(pipeline_root, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))


def search_log_path() -> str:
    """The log of ``search`` (appended to): one file per user in the temp folder.

    ``search`` only reads a serving directory and may run where no pipeline root exists, so its
    library messages do not go next to the run logs.
    """
    return os.path.join(tempfile.gettempdir(), f"xmodal-search-{os.getuid()}.log")


@contextlib.contextmanager
def stderr_to_log(log_path: str) -> Iterator[TextIO]:
    """Sends file descriptor 2 (and so ``sys.stderr``) to ``log_path`` while the block runs.

    Yields:
      A text stream on the original stderr, for the few lines a person must see (errors).

    """
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    # backslashreplace, as sys.stderr: a file name that is not UTF-8 must not fail its error line
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, errors="backslashreplace")
    try:
        yield terminal
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception of a chain (``raise ... from`` or raised while handling).

    Beam and TFX re-raise a component's error wrapped, with the same text plus where it ran;
    the innermost one is the error as the component raised it.
    """
    seen = {id(err)}
    while True:
        inner = err.__cause__ or err.__context__
        if inner is None or id(inner) in seen:
            return err
        seen.add(id(inner))
        err = inner


def error_line(err: BaseException) -> str:
    """One line for the terminal: the root cause's type and the first line of its message."""
    cause = root_cause(err)
    message = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {message[0] if message else '(no message)'}"
