"""The two towers: image features -> R^d and caption -> R^d, each ending in L2 normalization.

Image towers read ``IMAGE_FEATURES_XF`` [B, D]. Text towers read a dict of transformed features:
token towers (``gru``, ``mean``) use ``CAPTION_TOKENS_XF`` [B, L] (0 = padding) and
``CAPTION_LENGTH_XF`` [B]; the ``linear`` text tower uses ``CAPTION_FEATURES_XF`` [B, D_c].
``TEXT_TOWER_BUILDERS`` is the factory keyed by ``TrainerConfig.text_tower``: a new text tower is
one more entry there (and its name in ``trainer.config.TEXT_TOWERS``).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
import tf_keras as keras

from trainer import features
from trainer.config import TrainerConfig
from trainer.model import minilm
from trainer.negatives import primitive_matmul
from trainer.tokens import wordpiece


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """Row-wise L2 normalization of [B, d] (an all-zero row stays zero, never NaN)."""
    return tf.math.l2_normalize(x, axis=-1, epsilon=1e-12)


class ImageTower(keras.Model):
    """Image features [B, D] -> L2-normalized [B, d]: bias-free linear map or a 2-layer MLP."""

    def __init__(self, kind: str, embedding_dim: int, hidden: int = 2048, dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.dropout = keras.layers.Dropout(dropout)
        self.hidden = primitive_matmul.Dense(hidden, activation="relu") if kind == "mlp" else None
        self.project = primitive_matmul.Dense(embedding_dim, use_bias=kind == "mlp")

    def call(self, image_features: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Embeds [B, D] float32 image features into [B, d]."""
        x = self.dropout(tf.cast(image_features, tf.float32), training=training)
        if self.hidden is not None:
            x = self.hidden(x)
        return l2_normalize(self.project(x))


class TokenTextTower(keras.Model):
    """Caption token ids -> L2-normalized [B, d] via a masked bi-GRU or masked mean pooling.

    The mask comes from ``CAPTION_LENGTH_XF``; an empty caption (length 0) pools to a zero vector
    (the mean divides by max(length, 1); the GRU keeps its zero initial state), so its embedding
    is the normalized projection bias, never NaN.
    """

    def __init__(self, kind: str, vocab_size: int, embedding_dim: int, word_dim: int = 300,
                 gru_units: int = 512, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.embed = keras.layers.Embedding(vocab_size, word_dim)
        self.dropout = keras.layers.Dropout(dropout)
        self.gru = (keras.layers.Bidirectional(keras.layers.GRU(gru_units))
                    if kind == "gru" else None)
        self.project = primitive_matmul.Dense(embedding_dim)

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Embeds {tokens [B, L] int64, length [B] int64} into [B, d]."""
        tokens = tf.cast(inputs[features.CAPTION_TOKENS_XF], tf.int64)
        length = tf.cast(tf.reshape(inputs[features.CAPTION_LENGTH_XF], [-1]), tf.int32)
        mask = tf.sequence_mask(length, maxlen=tf.shape(tokens)[1])
        x = self.dropout(self.embed(tokens), training=training)
        if self.gru is not None:
            pooled = self.gru(x, mask=mask, training=training)
        else:
            weights = tf.cast(mask, x.dtype)[:, :, None]
            count = tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
            pooled = tf.reduce_sum(x * weights, axis=1) / count
        return l2_normalize(self.project(pooled))


class FeatureTextTower(keras.Model):
    """Precomputed caption features [B, D_c] -> L2-normalized [B, d] (bias-free linear)."""

    def __init__(self, embedding_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dropout = keras.layers.Dropout(dropout)
        self.project = primitive_matmul.Dense(embedding_dim, use_bias=False)

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Embeds {caption_features [B, D_c]} into [B, d]."""
        x = tf.cast(inputs[features.CAPTION_FEATURES_XF], tf.float32)
        return l2_normalize(self.project(self.dropout(x, training=training)))


def linear_head(tower: keras.Model, inputs) -> tuple[tf.Tensor, tf.Variable] | None:
    """``(x [N, p], W [p, d])`` when ``tower(inputs)`` is ``l2_normalize(x @ W)`` in inference.

    That holds for the bias-free ``linear`` image tower and the ``linear`` caption-feature tower
    (their dropout is off in inference); global mining can then score the training set through
    the head (``trainer.mining.hardest_rows``). Any other tower returns None.
    """
    if isinstance(tower, ImageTower) and tower.hidden is None:
        return tf.cast(inputs, tf.float32), tower.project.kernel
    if isinstance(tower, FeatureTextTower):
        return tf.cast(inputs[features.CAPTION_FEATURES_XF], tf.float32), tower.project.kernel
    return None


def reusable_training_head(tower: keras.Model, inputs) -> tuple[tf.Tensor, tf.Variable] | None:
    """``linear_head`` of a tower whose training call is ``l2_normalize(x @ W)`` too.

    That is the ``linear`` image tower without dropout: its products ``x @ W``, once computed
    for global mining, are also its training outputs (``rows_of_products``).
    """
    if isinstance(tower, ImageTower) and tower.dropout.rate == 0:
        return linear_head(tower, inputs)
    return None


def rows_of_products(inputs: tf.Tensor, kernel: tf.Variable, products: tf.Tensor,
                     rows: tf.Tensor) -> tf.Tensor:
    """``inputs[rows] @ kernel`` [k, d], read from ``products`` = ``inputs @ kernel`` [N, d].

    The gradient to ``kernel`` is ``inputs[rows]^T @ upstream``, as if the rows were multiplied
    again: the forward matmul is saved. Repeated rows (hard negatives repeat) are summed first,
    so the gradient matmul runs over distinct rows. ``products`` must be those of the kernel's
    current value.
    """

    @tf.custom_gradient
    def project(kernel_value: tf.Tensor) -> tuple[tf.Tensor, object]:
        del kernel_value  # the value is in products; the tape records the kernel's read

        def gradient(upstream: tf.Tensor) -> tf.Tensor:
            distinct, position = tf.unique(rows)
            summed = tf.math.unsorted_segment_sum(upstream, position, tf.size(distinct))
            return primitive_matmul.matmul(tf.gather(inputs, distinct), summed,
                                           transpose_a=True)

        return tf.gather(products, rows), gradient

    return project(tf.convert_to_tensor(kernel))


def _token_tower(config: TrainerConfig, vocab_size: int) -> keras.Model:
    return TokenTextTower(config.text_tower, vocab_size, config.embedding_dim, config.word_dim,
                          config.gru_units, config.dropout, name="text_tower")


def _feature_tower(config: TrainerConfig, vocab_size: int) -> keras.Model:
    del vocab_size  # caption features need no vocabulary
    return FeatureTextTower(config.embedding_dim, config.dropout, name="text_tower")


def _minilm_tower(config: TrainerConfig, vocab_size: int) -> keras.Model:
    del vocab_size  # WordPiece ids index MiniLM's own vocabulary
    return minilm.build_minilm_text_tower(config.embedding_dim, config.minilm_trainable_layers)


TEXT_TOWER_BUILDERS: dict[str, Callable[[TrainerConfig, int], keras.Model]] = {
    "gru": _token_tower,
    "mean": _token_tower,
    "linear": _feature_tower,
    "minilm": _minilm_tower,
}
# Transformed features each text tower reads.
TEXT_TOWER_INPUTS: dict[str, tuple[str, ...]] = {
    "gru": (features.CAPTION_TOKENS_XF, features.CAPTION_LENGTH_XF),
    "mean": (features.CAPTION_TOKENS_XF, features.CAPTION_LENGTH_XF),
    "linear": (features.CAPTION_FEATURES_XF,),
    "minilm": (wordpiece.WORDPIECE_IDS_XF, wordpiece.WORDPIECE_MASK_XF),
}


def text_inputs(config: TrainerConfig) -> tuple[str, ...]:
    """The transformed feature keys that the configured text tower reads."""
    return TEXT_TOWER_INPUTS[config.text_tower]


def build_towers(config: TrainerConfig, vocab_size: int, image_dim: int,
                 caption_dim: int | None = None) -> tuple[keras.Model, keras.Model]:
    """Builds (and creates the variables of) the image and text towers.

    Args:
        config: the trainer config (tower kinds and sizes).
        vocab_size: Embedding input_dim (padding, vocabulary and OOV ids); token towers only.
        image_dim: D, the image feature size.
        caption_dim: D_c, the caption feature size; required by the ``linear`` text tower.

    Returns:
        ``(image_tower, text_tower)``, both mapping to L2-normalized [B, embedding_dim].

    Raises:
        ValueError: the ``linear`` text tower without ``caption_dim``.

    """
    if config.text_tower == "linear" and not caption_dim:
        raise ValueError("text_tower='linear' needs caption_features in the transformed data")
    image_tower = ImageTower(config.image_tower, config.embedding_dim, config.mlp_hidden,
                             config.dropout, name="image_tower")
    text_tower = TEXT_TOWER_BUILDERS[config.text_tower](config, vocab_size)
    image_tower(tf.zeros([1, image_dim]))
    dummy = {
        features.CAPTION_TOKENS_XF: tf.ones([1, 1], tf.int64),
        features.CAPTION_LENGTH_XF: tf.ones([1], tf.int64),
        features.CAPTION_FEATURES_XF: tf.zeros([1, caption_dim or 1]),
        wordpiece.WORDPIECE_IDS_XF: tf.ones([1, 1], tf.int64),
        wordpiece.WORDPIECE_MASK_XF: tf.ones([1, 1], tf.int64),
    }
    text_tower({key: dummy[key] for key in text_inputs(config)})
    return image_tower, text_tower
