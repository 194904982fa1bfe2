"""Checks that an exported encoder honours the serving contract of docs/architecture.md.

The Pusher runs this before publishing (a model that cannot be served as documented is never
pushed), and tests run it on any export. It loads every signature with ``tf.saved_model.load``,
calls it on probe inputs (a normal caption, an empty caption, an all-OOV caption, random image
features), and checks that outputs are finite unit rows [N, d] and that ``serving_default``
agrees with ``embed_text`` / ``embed_image`` on the same inputs.

``embed_text`` takes what the model declares: raw ``caption`` strings [N], or, for a
features-mode model (``text_tower=linear``), ``caption_features`` float32 [N, D_c]; the check
reads that input from the signature and probes it with captions or random features.
"""

import dataclasses
import io

import numpy as np
import tensorflow as tf

from serving.savedmodel import load_saved_model
from trainer import features

PROBE_CAPTIONS = ("a dog runs on the beach", "", "zqxj vbkw qqzzx")
_SIGNATURE_INPUTS = {
    features.SERVING_DEFAULT_SIGNATURE: (features.EXAMPLES_INPUT, tf.string),
    features.EMBED_IMAGE_SIGNATURE: (features.IMAGE_FEATURES_KEY, tf.float32),
}
# The text inputs ``embed_text`` may declare: raw captions, or precomputed caption features.
TEXT_INPUTS = {features.CAPTION_KEY: tf.string, features.CAPTION_FEATURES_KEY: tf.float32}


class ContractError(ValueError):
    """The SavedModel does not honour the serving contract (signature and rule named)."""


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """What the contract check learned.

    Attributes:
      feature_dim: D, the image feature width.
      embedding_dim: d, the embedding width.
      text_input: the input ``embed_text`` takes (``caption`` or ``caption_features``).
      text_feature_dim: D_c with ``caption_features``; 0 with ``caption``.

    """

    feature_dim: int
    embedding_dim: int
    text_input: str = features.CAPTION_KEY
    text_feature_dim: int = 0


def text_input_of(model: tf.Module, where: str) -> tuple[str, int]:
    """``(input name, D_c or 0)`` that the model's ``embed_text`` declares.

    Raises:
      ContractError: the signature is missing, or takes anything but one of ``TEXT_INPUTS``
        with its dtype (strings [N], or float32 [N, D_c] with a fixed D_c).

    """
    if features.EMBED_TEXT_SIGNATURE not in model.signatures:
        raise ContractError(f"{where}: missing signature {features.EMBED_TEXT_SIGNATURE!r}; has "
                            f"{sorted(model.signatures)}")
    specs = model.signatures[features.EMBED_TEXT_SIGNATURE].structured_input_signature[1]
    expected = " or ".join(f"{name!r} ({dtype.name})" for name, dtype in TEXT_INPUTS.items())
    if len(specs) != 1 or next(iter(specs)) not in TEXT_INPUTS:
        raise ContractError(f"{where}: signature 'embed_text' must take {expected}; "
                            f"takes {specs}")
    (name, spec), = specs.items()
    if spec.dtype != TEXT_INPUTS[name]:
        raise ContractError(f"{where}: signature 'embed_text' must take {expected}; "
                            f"takes {specs}")
    if name == features.CAPTION_KEY:
        return name, 0
    if spec.shape.rank != 2 or spec.shape[-1] is None:
        raise ContractError(f"{where}: embed_text input {name!r} must be [None, D_c] with a "
                            f"fixed D_c, got {spec.shape}")
    return name, int(spec.shape[-1])


def _check_inputs(model: tf.Module, where: str) -> int:
    """Checks signature names, input names and dtypes (not embed_text's); returns D."""
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


def _probe_examples(image_features: np.ndarray,
                    caption_features: np.ndarray | None = None) -> list[bytes]:
    """Serialized raw tf.Examples: PROBE_CAPTIONS, ``image_features`` (and caption) rows."""
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
        if caption_features is not None:
            example.features.feature[features.CAPTION_FEATURES_KEY].float_list.value.extend(
                caption_features[i])
        examples.append(example.SerializeToString())
    return examples


def _probe_images() -> list[bytes]:
    """A colour JPEG and a grayscale PNG, generated (no data files needed)."""
    from PIL import Image

    ramp = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint8)
    probes = []
    for image, fmt in ((Image.fromarray(ramp), "JPEG"), (Image.fromarray(ramp[..., 0]), "PNG")):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        probes.append(buffer.getvalue())
    return probes


def _check_image_bytes(model: tf.Module, where: str, atol: float) -> None:
    """Probes ``embed_image_bytes``; raises ContractError on the first violated rule.

    Valid images must give unit rows equal to ``embed_image`` on the backbone's features, corrupt
    bytes an InvalidArgumentError (TF Serving answers INVALID_ARGUMENT and keeps serving).
    """
    sig = model.signatures
    images = tf.constant(_probe_images())
    where = f"{where}: {features.EMBED_IMAGE_BYTES_SIGNATURE}"
    got = _unit_rows(sig[features.EMBED_IMAGE_BYTES_SIGNATURE](
        **{features.IMAGE_BYTES_INPUT: images})[features.IMAGE_EMBEDDING_OUTPUT], 2, where, atol)
    if hasattr(model, "image_features_from_bytes"):
        want = sig[features.EMBED_IMAGE_SIGNATURE](**{
            features.IMAGE_FEATURES_KEY: model.image_features_from_bytes(images)})[
            features.IMAGE_EMBEDDING_OUTPUT].numpy()
        if not np.allclose(got, want, atol=atol):
            raise ContractError(f"{where} differs from embed_image on the backbone's features "
                                f"by {np.abs(got - want).max()}")
    try:
        sig[features.EMBED_IMAGE_BYTES_SIGNATURE](
            **{features.IMAGE_BYTES_INPUT: tf.constant([b"\xff\xd8\xff corrupt"])})
    except tf.errors.InvalidArgumentError:
        return
    raise ContractError(f"{where}: corrupt bytes must raise InvalidArgumentError")


def check_encoder_contract(saved_model_dir: str, atol: float = 1e-4,
                           loaded: tf.Module | None = None) -> EncoderSpec:
    """Loads ``saved_model_dir``, calls every signature and checks the contract.

    Args:
        saved_model_dir: the exported encoder.
        atol: tolerance of unit norms and of the agreement between signatures.
        loaded: ``load_saved_model(saved_model_dir)`` when the caller has it (one load).

    Returns:
        The encoder's D and d.

    Raises:
        ContractError: the first violated rule, with the signature named.

    """
    model = loaded if loaded is not None else load_saved_model(saved_model_dir)
    feature_dim = _check_inputs(model, saved_model_dir)
    text_input, text_dim = text_input_of(model, saved_model_dir)
    rows = len(PROBE_CAPTIONS)
    rng = np.random.default_rng(0)
    image_features = rng.uniform(0, 6, (rows, feature_dim)).astype(np.float32)
    caption_features = (rng.uniform(0, 6, (rows, text_dim)).astype(np.float32) if text_dim
                        else None)
    text_probe = PROBE_CAPTIONS if caption_features is None else caption_features
    sig = model.signatures
    text = _unit_rows(sig[features.EMBED_TEXT_SIGNATURE](
        **{text_input: tf.constant(text_probe)})[features.TEXT_EMBEDDING_OUTPUT],
        rows, f"{saved_model_dir}: embed_text", atol)
    image = _unit_rows(sig[features.EMBED_IMAGE_SIGNATURE](
        **{features.IMAGE_FEATURES_KEY: tf.constant(image_features)})[
        features.IMAGE_EMBEDDING_OUTPUT], rows, f"{saved_model_dir}: embed_image", atol)
    both = sig[features.SERVING_DEFAULT_SIGNATURE](
        **{features.EXAMPLES_INPUT: tf.constant(_probe_examples(image_features,
                                                                caption_features))})
    for output, expected in ((features.TEXT_EMBEDDING_OUTPUT, text),
                             (features.IMAGE_EMBEDDING_OUTPUT, image)):
        where = f"{saved_model_dir}: serving_default {output}"
        got = _unit_rows(both[output], rows, where, atol)
        if not np.allclose(got, expected, atol=atol):
            raise ContractError(f"{where} differs from the embed_* signature by "
                                f"{np.abs(got - expected).max()}")
    if features.EMBED_IMAGE_BYTES_SIGNATURE in sig:
        _check_image_bytes(model, saved_model_dir, atol)
    if text.shape[1] != image.shape[1]:
        raise ContractError(f"{saved_model_dir}: text width {text.shape[1]} != image width "
                            f"{image.shape[1]}")
    return EncoderSpec(feature_dim, int(text.shape[1]), text_input, text_dim)
