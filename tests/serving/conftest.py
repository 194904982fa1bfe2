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
