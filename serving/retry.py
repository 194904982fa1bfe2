"""Errors of the serving clients and retries with exponential backoff on UNAVAILABLE."""

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ServingError(RuntimeError):
    """A model server answered with an error (bad request, unknown model, ...)."""


class ServingInvalidInputError(ServingError):
    """The server refused the input (gRPC INVALID_ARGUMENT, HTTP 400): the caller's fault."""


class ServingNotFoundError(ServingError):
    """The model or the pinned version is not (or no longer) served (NOT_FOUND, HTTP 404)."""


class ServingUnavailableError(ServingError):
    """The server stayed UNAVAILABLE through every retry."""


class ServingTimeoutError(ServingError, TimeoutError):
    """A request did not complete within its deadline."""


class RetryableError(Exception):
    """Raised by a request attempt that may succeed when repeated (UNAVAILABLE, HTTP 503)."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to repeat a request that failed with UNAVAILABLE.

    Attributes:
        max_attempts: total attempts, the first one included (>= 1).
        initial_backoff_s: wait before the second attempt.
        multiplier: factor applied to the wait after each further failure.
        max_backoff_s: ceiling of one wait.

    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    multiplier: float = 2.0
    max_backoff_s: float = 2.0

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValueError(f"RetryPolicy backoffs must be >= 0 and multiplier >= 1: {self}")

    def backoffs(self) -> list[float]:
        """The waits between attempts (``max_attempts - 1`` values)."""
        waits, wait = [], self.initial_backoff_s
        for _ in range(self.max_attempts - 1):
            waits.append(min(wait, self.max_backoff_s))
            wait *= self.multiplier
        return waits


def call_with_retries(attempt: Callable[[], T], policy: RetryPolicy, what: str,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Runs ``attempt`` until it does not raise ``RetryableError`` or attempts run out.

    Args:
        attempt: one request; raises ``RetryableError`` when the server is unavailable.
        policy: attempts and backoff.
        what: the request, for messages (e.g. ``"REST predict http://.../m:predict"``).
        sleep: the wait function (injectable for tests).

    Returns:
        What ``attempt`` returned.

    Raises:
        ServingUnavailableError: every attempt was unavailable.

    """
    last_error: RetryableError | None = None
    for index, wait in enumerate([*policy.backoffs(), None]):
        try:
            return attempt()
        except RetryableError as err:
            last_error = err
            logging.warning("%s unavailable (attempt %d/%d): %s", what, index + 1,
                            policy.max_attempts, err)
            if wait is not None:
                sleep(wait)
    raise ServingUnavailableError(
        f"{what}: still unavailable after {policy.max_attempts} attempts: {last_error}")
