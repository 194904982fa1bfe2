"""Shared fixtures of the serving tests: a toy encoder SavedModel with the contract signatures."""

import pathlib

import pytest

FEATURE_DIM = 6
EMBEDDING_DIM = 8


@pytest.fixture(scope="session")
def toy_model_dir(tmp_path_factory) -> pathlib.Path:
    from serving.toy_model import write_toy_encoder

    return write_toy_encoder(tmp_path_factory.mktemp("toy") / "encoder", FEATURE_DIM,
                             EMBEDDING_DIM)


@pytest.fixture(scope="session")
def bytes_model_dir(tmp_path_factory) -> pathlib.Path:
    """The toy encoder with ``embed_image_bytes`` (tiny TFLite backbone, D = 8)."""
    from tests.serving.bytes_encoder import write_bytes_encoder

    return write_bytes_encoder(tmp_path_factory.mktemp("bytes") / "encoder", EMBEDDING_DIM)
