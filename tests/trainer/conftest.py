"""Shared fixtures of the trainer tests."""

import pytest

from tests.trainer.fixtures import TransformedData, build_transformed, raw_rows


@pytest.fixture(scope="session")
def transformed(tmp_path_factory) -> TransformedData:
    """16 train images and 8 eval images, 3 captions each, transformed (built once)."""
    return build_transformed(tmp_path_factory.mktemp("transformed"),
                             raw_rows(16, 3, seed=0, prefix="train"),
                             raw_rows(8, 3, seed=1, prefix="eval"),
                             {"vocab_frequency_threshold": 1})
