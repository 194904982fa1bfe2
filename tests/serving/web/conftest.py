"""Fixtures of the search service's tests: a serving directory with two pushed toy models."""

import pathlib

import pytest

from tests.serving.bytes_encoder import write_bytes_encoder
from tests.serving.web import gallery

MODEL = "toy"
COMPARE_MODEL = "toy_b"
VERSION = 1


@pytest.fixture(scope="session")
def pushed(tmp_path_factory) -> pathlib.Path:
    """``<root>/serving`` with ``toy`` and ``toy_b`` version 1, and ``<root>/photos``."""
    root = tmp_path_factory.mktemp("web")
    serving_dir = root / "serving"
    for seed, name in enumerate((MODEL, COMPARE_MODEL)):
        encoder_dir = write_bytes_encoder(root / f"encoder-{name}", seed=seed)
        gallery.publish(serving_dir, encoder_dir, name, VERSION)
    gallery.write_photos(root / "photos")
    return root
