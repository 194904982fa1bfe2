"""Checks that an exported encoder honours the serving contract of docs/architecture.md.

The Pusher runs this before publishing (a model that cannot be served as documented is never
pushed), and tests run it on any export. It loads every signature with ``tf.saved_model.load``,
calls it on probe inputs (a normal caption, an empty caption, an all-OOV caption, random image
features), and checks that outputs are finite unit rows [N, d] and that ``serving_default``
agrees with ``embed_text`` / ``embed_image`` on the same inputs.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from serving.savedmodel import load_saved_model
from trainer import features

PROBE_CAPTIONS = ("a dog runs on the beach", "", "zqxj vbkw qqzzx")
_SIGNATURE_INPUTS = {
    features.SERVING_DEFAULT_SIGNATURE: (features.EXAMPLES_INPUT, tf.string),
    features.EMBED_TEXT_SIGNATURE: (features.CAPTION_KEY, tf.string),
    features.EMBED_IMAGE_SIGNATURE: (features.IMAGE_FEATURES_KEY, tf.float32),
}


class ContractError(ValueError):
    """The SavedModel does not honour the serving contract (signature and rule named)."""


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """What the contract check learned: image feature width D and embedding width d."""

    feature_dim: int
    embedding_dim: int


def _check_inputs(model: tf.Module, where: str) -> int:
    """Checks signature names, input names and dtypes; returns D."""
    for name, (input_name, dtype) in _SIGNATURE_INPUTS.items():
        if name not in model.signatures:
            raise ContractError(f"{where}: missing signature {name!r}; has "
                                f"{sorted(model.signatures)}")
        specs = model.signatures[name].structured_input_signature[1]
        if input_name not in specs or specs[input_name].dtype != dtype:
            raise ContractError(f"{where}: signature {name!r} must take {input_name!r} "
                                f"({dtype.name}); takes {specs}")
    shape = model.signatures[features.EMBED_IMAGE_SIGNATURE].structured_input_signature[1][
        features.IMAGE_FEATURES_KEY].shape
    if shape.rank != 2 or shape[-1] is None:
        raise ContractError(f"{where}: embed_image input must be [None, D] with a fixed D, "
                            f"got {shape}")
    return int(shape[-1])


def _unit_rows(value: tf.Tensor, rows: int, where: str, atol: float) -> np.ndarray:
    """Checks a [rows, d] output of finite unit rows and returns it."""
    array = value.numpy()
    if array.ndim != 2 or array.shape[0] != rows:
        raise ContractError(f"{where}: expected [{rows}, d], got {array.shape}")
    norms = np.linalg.norm(array, axis=1)
    if not np.all(np.isfinite(array)) or not np.allclose(norms, 1.0, atol=atol):
        raise ContractError(f"{where}: rows must be finite unit vectors, norms {norms}")
    return array


def _probe_examples(image_features: np.ndarray) -> list[bytes]:
    """Serialized raw tf.Examples pairing PROBE_CAPTIONS with ``image_features`` rows."""
    examples = []
    for i, (caption, row) in enumerate(zip(PROBE_CAPTIONS, image_features, strict=True)):
        feature = {
            features.IMAGE_ID_KEY: [f"probe{i}.jpg".encode()],
            features.CAPTION_ID_KEY: [f"probe{i}.jpg#0".encode()],
            features.CAPTION_KEY: [caption.encode("utf-8")],
        }
        example = tf.train.Example()
        for key, value in feature.items():
            example.features.feature[key].bytes_list.value.extend(value)
        example.features.feature[features.IMAGE_FEATURES_KEY].float_list.value.extend(row)
        examples.append(example.SerializeToString())
    return examples


def check_encoder_contract(saved_model_dir: str, atol: float = 1e-4) -> EncoderSpec:
    """Loads ``saved_model_dir``, calls every signature and checks the contract.

    Args:
        saved_model_dir: the exported encoder.
        atol: tolerance of unit norms and of the agreement between signatures.

    Returns:
        The encoder's D and d.

    Raises:
        ContractError: the first violated rule, with the signature named.

    """
    model = load_saved_model(saved_model_dir)
    feature_dim = _check_inputs(model, saved_model_dir)
    rows = len(PROBE_CAPTIONS)
    image_features = np.random.default_rng(0).uniform(0, 6, (rows, feature_dim)).astype(
        np.float32)
    sig = model.signatures
    text = _unit_rows(sig[features.EMBED_TEXT_SIGNATURE](
        **{features.CAPTION_KEY: tf.constant(PROBE_CAPTIONS)})[features.TEXT_EMBEDDING_OUTPUT],
        rows, f"{saved_model_dir}: embed_text", atol)
    image = _unit_rows(sig[features.EMBED_IMAGE_SIGNATURE](
        **{features.IMAGE_FEATURES_KEY: tf.constant(image_features)})[
        features.IMAGE_EMBEDDING_OUTPUT], rows, f"{saved_model_dir}: embed_image", atol)
    both = sig[features.SERVING_DEFAULT_SIGNATURE](
        **{features.EXAMPLES_INPUT: tf.constant(_probe_examples(image_features))})
    for output, expected in ((features.TEXT_EMBEDDING_OUTPUT, text),
                             (features.IMAGE_EMBEDDING_OUTPUT, image)):
        where = f"{saved_model_dir}: serving_default {output}"
        got = _unit_rows(both[output], rows, where, atol)
        if not np.allclose(got, expected, atol=atol):
            raise ContractError(f"{where} differs from the embed_* signature by "
                                f"{np.abs(got - expected).max()}")
    if text.shape[1] != image.shape[1]:
        raise ContractError(f"{saved_model_dir}: text width {text.shape[1]} != image width "
                            f"{image.shape[1]}")
    return EncoderSpec(feature_dim, int(text.shape[1]))
