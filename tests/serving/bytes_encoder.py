"""The toy encoder plus ``embed_image_bytes``: the tiny TFLite backbone's 8-d features, bytes in."""

import pathlib

from serving.toy_model import write_toy_bytes_encoder
from tests.trainer.tiny_tflite import FEATURE_DIM, tiny_tflite_path

BYTES_FEATURE_DIM = FEATURE_DIM


def write_bytes_encoder(export_dir: pathlib.Path, embedding_dim: int = 8,
                        seed: int = 0) -> pathlib.Path:
    """Writes the toy encoder (D = 8) with an ``embed_image_bytes`` signature; returns the path."""
    return write_toy_bytes_encoder(export_dir, str(tiny_tflite_path()), embedding_dim, seed)
