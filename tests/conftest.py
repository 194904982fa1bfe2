"""Test-wide settings: quiet TensorFlow, no GPU, legacy Keras, deterministic seeds, slow marks."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
os.environ.setdefault("PYTHONHASHSEED", "0")

import pathlib  # noqa: E402
import random  # noqa: E402
from collections.abc import Iterable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SEED = 1234
SHARED_DIR = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
FLICKR8K_DIR = SHARED_DIR / "data" / "flickr8k"


@pytest.fixture(autouse=True)
def _deterministic_seeds():
    """Seeds Python and NumPy (and TensorFlow when a test imported it) before every test."""
    random.seed(SEED)
    np.random.seed(SEED)
    import sys

    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(SEED)
    yield


@pytest.fixture(scope="session")
def shipped_image_backbone() -> pathlib.Path:
    """The TFLite model in ../shared that a default export embeds (skips the test when absent)."""
    from trainer.config import DEFAULT_TFLITE_PATH

    if not os.path.exists(DEFAULT_TFLITE_PATH):
        pytest.skip(f"the shipped image backbone is not at {DEFAULT_TFLITE_PATH}")
    return pathlib.Path(DEFAULT_TFLITE_PATH)


@pytest.fixture(scope="session")
def flickr8k_dir() -> pathlib.Path:
    """The real Flickr8k data in ../shared (skips the test when it is absent)."""
    if not (FLICKR8K_DIR / "Flickr8k.token.txt").exists():
        pytest.skip(f"real Flickr8k data not found at {FLICKR8K_DIR}")
    return FLICKR8K_DIR


def slow_marks_without_duration(items: Iterable[pytest.Item]) -> list[str]:
    """Node ids of slow tests whose mark does not state ``minutes=<positive number>``."""
    missing = []
    for item in items:
        mark = item.get_closest_marker("slow")
        minutes = mark.kwargs.get("minutes") if mark else None
        if mark and not (isinstance(minutes, (int, float)) and minutes > 0):
            missing.append(item.nodeid)
    return missing


@pytest.hookimpl(tryfirst=True)  # before ``-m 'not slow'`` deselects them: every run checks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every slow test states its expected duration, ``@pytest.mark.slow(minutes=N)``.

    CI runs the slow tests in what is left of its time budget and lists those it did not reach;
    the stated durations tell a reader what that costs and where the budget goes.
    """
    missing = slow_marks_without_duration(items)
    if missing:
        raise pytest.UsageError("slow tests without @pytest.mark.slow(minutes=N): "
                                + ", ".join(missing))
