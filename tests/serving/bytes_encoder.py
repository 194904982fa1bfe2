"""The toy encoder plus ``embed_image_bytes``: the tiny TFLite backbone's 8-d features, bytes in."""

import pathlib
import tempfile

import tensorflow as tf

from serving.toy_model import DEFAULT_VOCABULARY, ToyEncoder, save_encoder
from tests.trainer.tiny_tflite import FEATURE_DIM, tiny_tflite_path
from trainer import features
from trainer.image_backbone import ImageBackbone
from trainer.transform_config import VOCAB_NAME

BYTES_FEATURE_DIM = FEATURE_DIM


def write_bytes_encoder(export_dir: pathlib.Path, embedding_dim: int = 8) -> pathlib.Path:
    """Writes the toy encoder (D = 8) with an ``embed_image_bytes`` signature; returns the path.

    Like the exported encoder, ``image_features_from_bytes`` is kept as a plain function so that
    the contract check compares ``embed_image_bytes`` with ``embed_image`` on the same features.
    """
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = pathlib.Path(tmp) / VOCAB_NAME
        vocab_file.write_text("\n".join(DEFAULT_VOCABULARY) + "\n", encoding="utf-8")
        encoder = ToyEncoder(str(vocab_file), len(DEFAULT_VOCABULARY), FEATURE_DIM,
                             embedding_dim)
        encoder.backbone = ImageBackbone(tiny_tflite_path())
        bytes_spec = tf.TensorSpec([None], tf.string, name=features.IMAGE_BYTES_INPUT)
        encoder.image_features_from_bytes = tf.function(
            encoder.backbone.__call__, input_signature=[bytes_spec]).get_concrete_function()
        embed_bytes = tf.function(
            lambda image_bytes: {features.IMAGE_EMBEDDING_OUTPUT: encoder._image(
                encoder.image_features_from_bytes(image_bytes))}, input_signature=[bytes_spec])
        save_encoder(encoder, export_dir,
                     {features.EMBED_IMAGE_BYTES_SIGNATURE: embed_bytes.get_concrete_function()})
    return export_dir
