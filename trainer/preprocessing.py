"""The Transform ``preprocessing_fn``: caption tokens + vocabulary, feature scaling.

TFX runs it by module path (``trainer.preprocessing.preprocessing_fn``) with the pipeline's
``custom_config`` (the fields of :class:`TransformConfig`). The same graph is saved with the
transform output and runs inside the exported SavedModel, so serving applies exactly the
tokenization, vocabulary and scaling constants that training saw.

Outputs (names from ``trainer/features.py``), for a batch of N raw examples:

- ``CAPTION_TOKENS_XF`` int64 [N, max_tokens]: vocabulary ids shifted by +1, so 0 is padding;
  out-of-vocabulary tokens hash into ``num_oov_buckets`` buckets after the vocabulary.
- ``CAPTION_LENGTH_XF`` int64 [N]: number of real tokens (``<= max_tokens``; 0 for a caption
  without words, which only serving can see: ExampleGen rejects such captions).
- ``IMAGE_FEATURES_XF`` float32 [N, D] and, when the raw data has them,
  ``CAPTION_FEATURES_XF`` float32 [N, Dc]: scaled by the configured full-pass scaling.
- ``IMAGE_ID_KEY``, ``CAPTION_ID_KEY``: string [N], unchanged.
- only when ``wordpiece_max_tokens`` is set (the ``minilm`` text tower):
  ``trainer.tokens.wordpiece.WORDPIECE_IDS_XF`` / ``WORDPIECE_MASK_XF`` int64 [N,
  wordpiece_max_tokens].

Full-pass statistics (vocabulary, z-score moments, column norms) come from the analyzed split,
one row per caption: an image with k captions counts k times. With Flickr8k's 5 captions per
image, ``l2_column`` is the paper's per-image column norm times sqrt(5) (a constant factor) and
``zscore`` equals per-image standardization.

The vocabulary is written as the plain-text asset ``VOCAB_NAME`` (one token a line, most
frequent first); ``token_vocab_size`` gives the Embedding ``input_dim``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform import schema_inference

from trainer import features
from trainer.tokens import text, wordpiece
from trainer.tokens.transform_config import (  # noqa: F401  (re-exported: TransformConfig's home)
    L2_COLUMN,
    L2_ROW,
    NO_SCALING,
    SCALINGS,
    VOCAB_NAME,
    Z_SCORE,
    TransformConfig,
)

PADDING_ID = 0


def _scale_l2_column(x: tf.Tensor) -> tf.Tensor:
    """Divides each column of ``x`` [N, D] by its L2 norm over the analyzed split."""
    column_norm = tf.sqrt(tft.sum(tf.square(x), reduce_instance_dims=False))  # [D]
    return x / tf.where(column_norm > 0.0, column_norm, tf.ones_like(column_norm))


_SCALERS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    NO_SCALING: tf.identity,
    L2_ROW: lambda x: tf.math.l2_normalize(x, axis=1),
    Z_SCORE: lambda x: tft.scale_to_z_score(x, elementwise=True),
    L2_COLUMN: _scale_l2_column,
}


def scale_features(x: tf.Tensor, scaling: str) -> tf.Tensor:
    """Applies one of ``SCALINGS`` to a float feature matrix.

    ``zscore`` leaves a constant dimension centred but unscaled; ``l2_column`` leaves an
    all-zero dimension at 0; ``l2_row`` maps an all-zero row to 0.

    Args:
        x: float tensor [N, D].
        scaling: a member of ``SCALINGS``.

    Returns:
        float32 [N, D].

    """
    return _SCALERS[scaling](tf.cast(x, tf.float32))


def caption_token_features(captions: tf.Tensor, config: TransformConfig) -> dict[str, tf.Tensor]:
    """Tokenizes captions, applies the vocabulary and pads/truncates to ``max_tokens``.

    The vocabulary is computed over all tokens (before truncation).

    Args:
        captions: string [N] raw captions.
        config: the Transform configuration.

    Returns:
        ``{CAPTION_TOKENS_XF: int64 [N, max_tokens], CAPTION_LENGTH_XF: int64 [N]}``.

    """
    tokens = text.tokenize(captions)  # [N, (T)]
    threshold = config.vocab_frequency_threshold
    ids = tft.compute_and_apply_vocabulary(
        tokens,
        top_k=config.vocab_top_k,
        frequency_threshold=threshold if threshold > 1 else None,  # 1 keeps all: TFT wants None
        num_oov_buckets=config.num_oov_buckets,
        vocab_filename=VOCAB_NAME,
    )
    shifted = tf.cast(ids, tf.int64) + 1  # [N, (T)], 1.. (0 is padding)
    padded = shifted.to_tensor(default_value=PADDING_ID, shape=[None, config.max_tokens])
    # Record the id range in the transformed schema (int_domain 0..V+B): token_vocab_size reads it.
    num_ids = tft.get_num_buckets_for_transformed_feature(ids.flat_values)  # V + B
    schema_inference.set_tensor_schema_override(
        padded, tf.constant(PADDING_ID, tf.int64), tf.cast(num_ids, tf.int64)
    )
    lengths = tf.minimum(shifted.row_lengths(), config.max_tokens)
    return {features.CAPTION_TOKENS_XF: padded, features.CAPTION_LENGTH_XF: lengths}


def _dense(inputs: Mapping[str, Any], key: str) -> tf.Tensor:
    """The dense raw feature ``key``; composite tensors mean the schema lacks a fixed shape."""
    if key not in inputs:
        raise ValueError(f"preprocessing_fn: raw feature '{key}' is missing; got {sorted(inputs)}")
    value = inputs[key]
    if not isinstance(value, tf.Tensor):
        raise ValueError(
            f"preprocessing_fn: raw feature '{key}' arrived as {type(value).__name__}; the schema "
            "must give it a fixed shape (FixedLenFeature), e.g. SchemaGen infer_feature_shape"
        )
    return value


def _scalar_column(inputs: Mapping[str, Any], key: str) -> tf.Tensor:
    """A single-valued raw feature, [N] or [N, 1], as [N]."""
    value = _dense(inputs, key)
    if value.shape.rank == 2 and value.shape[1] == 1:
        return tf.squeeze(value, axis=1)
    if value.shape.rank != 1:
        raise ValueError(f"preprocessing_fn: '{key}' must be [N] or [N, 1], got {value.shape}")
    return value


def _matrix(inputs: Mapping[str, Any], key: str) -> tf.Tensor:
    """A fixed-length float raw feature as [N, D] with a known D."""
    value = _dense(inputs, key)
    if value.shape.rank != 2 or value.shape[1] is None:
        raise ValueError(
            f"preprocessing_fn: '{key}' must be [N, D] with a fixed D, got {value.shape}"
        )
    return value


def preprocessing_fn(
    inputs: Mapping[str, Any], custom_config: Mapping[str, Any] | None = None
) -> dict[str, tf.Tensor]:
    """The Transform entry point (see the module docstring for the outputs).

    Args:
        inputs: raw features as parsed with the schema: ``IMAGE_ID_KEY``, ``CAPTION_ID_KEY``,
            ``CAPTION_KEY`` string [N] or [N, 1]; ``IMAGE_FEATURES_KEY`` float [N, D];
            optionally ``CAPTION_FEATURES_KEY`` float [N, Dc].
        custom_config: ``TransformConfig`` fields; None or missing fields take the defaults.

    Returns:
        The transformed features, keyed by ``trainer/features.py`` names.

    """
    config = TransformConfig.from_dict(custom_config)
    outputs = {key: _scalar_column(inputs, key) for key in features.ID_KEYS}
    captions = _scalar_column(inputs, features.CAPTION_KEY)
    image_features = _matrix(inputs, features.IMAGE_FEATURES_KEY)
    has_caption_features = features.CAPTION_FEATURES_KEY in inputs
    if has_caption_features:
        caption_features = _matrix(inputs, features.CAPTION_FEATURES_KEY)
    outputs.update(caption_token_features(captions, config))
    if config.wordpiece_max_tokens is not None:
        outputs.update(wordpiece.wordpiece_features(captions, config.wordpiece_max_tokens))
    outputs[features.IMAGE_FEATURES_XF] = scale_features(image_features, config.image_scaling)
    if has_caption_features:
        outputs[features.CAPTION_FEATURES_XF] = scale_features(
            caption_features, config.caption_features_scaling
        )
    return outputs


def token_vocab_size(
    tf_transform_output: tft.TFTransformOutput, transform_config: TransformConfig | None = None
) -> int:
    """The Embedding ``input_dim`` for ``CAPTION_TOKENS_XF``: padding + vocabulary + OOV buckets.

    Read from the transformed schema (``int_domain`` of ``CAPTION_TOKENS_XF``, written by
    ``preprocessing_fn``), so the Trainer needs no copy of the Transform config.

    Args:
        tf_transform_output: the Transform component's output.
        transform_config: optional cross-check: the config the Transform ran with.

    Returns:
        1 + vocabulary size + ``num_oov_buckets``.

    Raises:
        ValueError: the schema lacks the domain, or ``transform_config`` disagrees with it.

    """
    schema = tf_transform_output.transformed_metadata.schema
    domains = {feature.name: feature for feature in schema.feature}
    tokens = domains.get(features.CAPTION_TOKENS_XF)
    if tokens is None or not tokens.HasField("int_domain"):
        raise ValueError(f"transformed schema has no int_domain for {features.CAPTION_TOKENS_XF}")
    size = int(tokens.int_domain.max) + 1
    if transform_config is not None:
        vocab_size = tf_transform_output.vocabulary_size_by_name(VOCAB_NAME)
        expected = vocab_size + transform_config.num_oov_buckets + 1
        if size != expected:
            raise ValueError(
                f"{features.CAPTION_TOKENS_XF} has {size} ids in the transformed schema but "
                f"vocabulary {vocab_size} + num_oov_buckets {transform_config.num_oov_buckets} "
                f"+ padding = {expected}: the config differs from the one Transform ran with"
            )
    return size


def conform_to_raw_spec(
    raw: Mapping[str, tf.Tensor], raw_feature_spec: Mapping[str, tf.io.FixedLenFeature]
) -> dict[str, tf.Tensor]:
    """Reshapes serving inputs (e.g. caption string [N]) to the raw feature spec's layout.

    The Transform layer checks its inputs against the schema's shapes: a caption schema of
    shape [1] needs [N, 1]. Feed the result to ``tf_transform_output.transform_features_layer()``.

    Args:
        raw: raw features, each [N, ...] with N the batch (e.g. ``{CAPTION_KEY: [N]}``).
        raw_feature_spec: ``tf_transform_output.raw_feature_spec()``.

    Returns:
        The same features, each reshaped to [N, *spec.shape].

    """
    unknown = sorted(set(raw) - set(raw_feature_spec))
    if unknown:
        raise ValueError(
            f"features {unknown} are not in the raw feature spec {sorted(raw_feature_spec)}"
        )
    return {
        key: tf.reshape(value, [-1, *raw_feature_spec[key].shape]) for key, value in raw.items()
    }
