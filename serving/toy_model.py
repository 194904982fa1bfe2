"""A small deterministic encoder SavedModel with exactly the export contract's signatures.

Serving code, its tests and its benchmarks must run before (and independently of) a trained
model. This module writes a ``tf.Module`` SavedModel with the signatures of docs/architecture.md
(``serving_default``, ``embed_text``, ``embed_image``) and the same inputs and outputs:

* ``embed_text``: captions are lower-cased, split on non-alphanumerics and looked up in a
  vocabulary asset file (one OOV bucket); the text embedding is the masked mean of fixed random
  token vectors plus a bias, so empty and all-OOV captions still give finite unit vectors.
* ``embed_image``: ``image_features @ W + b`` for a fixed random ``W`` [D, d].
* ``serving_default``: parses serialized raw tf.Examples and runs both towers.

All outputs are L2-normalized. The vocabulary travels as a SavedModel asset, like the Transform
vocabulary of the real model, so re-exporting the encoder inside another SavedModel is exercised.
"""

import os
import pathlib
import tempfile

import numpy as np
import tensorflow as tf

from trainer import features
from trainer.tokens.transform_config import VOCAB_NAME

DEFAULT_VOCABULARY = (
    "a", "the", "dog", "dogs", "runs", "running", "on", "in", "beach", "grass", "man", "woman",
    "child", "girl", "boy", "red", "black", "white", "water", "ball", "snow", "street", "two",
)


def _l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """L2-normalizes the rows of ``x`` [N, d] (rows are never zero here)."""
    return tf.math.l2_normalize(x, axis=-1)


class ToyEncoder(tf.Module):
    """Deterministic two-tower encoder with the contract's signatures.

    Args:
        vocabulary_file: text file with one token per line (becomes a SavedModel asset).
        vocabulary_size: number of lines in ``vocabulary_file``.
        feature_dim: image feature width D.
        embedding_dim: embedding width d.
        seed: seed of the fixed random weights.

    """

    def __init__(self, vocabulary_file: str, vocabulary_size: int, feature_dim: int,
                 embedding_dim: int, seed: int = 0):
        super().__init__(name="toy_encoder")
        rng = np.random.default_rng(seed)
        self.feature_dim = feature_dim
        self.vocabulary_asset = tf.saved_model.Asset(vocabulary_file)
        initializer = tf.lookup.TextFileInitializer(
            self.vocabulary_asset, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        self.table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=1)
        self.token_vectors = tf.Variable(
            rng.normal(size=(vocabulary_size + 1, embedding_dim)).astype(np.float32))
        self.text_bias = tf.Variable(rng.normal(size=(embedding_dim,)).astype(np.float32))
        self.image_weights = tf.Variable(
            rng.normal(size=(feature_dim, embedding_dim)).astype(np.float32))
        self.image_bias = tf.Variable(rng.normal(size=(embedding_dim,)).astype(np.float32))

    def _text(self, caption: tf.Tensor) -> tf.Tensor:
        """Embeds captions [N] (string) into [N, d]."""
        text = tf.strings.regex_replace(tf.strings.lower(caption), r"[^a-z0-9]+", " ")
        tokens = tf.strings.split(tf.strings.strip(text))  # ragged [N, None]
        vectors = tf.ragged.map_flat_values(
            lambda t: tf.gather(self.token_vectors, self.table.lookup(t)), tokens)
        total = tf.reduce_sum(vectors, axis=1)  # [N, d], zero for empty captions
        count = tf.cast(tokens.row_lengths(), tf.float32)[:, None]
        mean = tf.math.divide_no_nan(total, tf.maximum(count, 1.0))
        return _l2_normalize(mean + self.text_bias)

    def _image(self, image_features: tf.Tensor) -> tf.Tensor:
        """Embeds image features [N, D] into [N, d]."""
        return _l2_normalize(tf.matmul(image_features, self.image_weights) + self.image_bias)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed_text(self, caption: tf.Tensor) -> dict[str, tf.Tensor]:
        """``caption`` [N] → ``text_embedding`` [N, d]."""
        return {features.TEXT_EMBEDDING_OUTPUT: self._text(caption)}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def embed_image(self, image_features: tf.Tensor) -> dict[str, tf.Tensor]:
        """``image_features`` [N, D] → ``image_embedding`` [N, d]."""
        return {features.IMAGE_EMBEDDING_OUTPUT: self._image(image_features)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Serialized raw tf.Examples [N] → both embeddings [N, d]."""
        spec = {
            features.CAPTION_KEY: tf.io.FixedLenFeature([], tf.string),
            features.IMAGE_FEATURES_KEY: tf.io.FixedLenFeature([self.feature_dim], tf.float32),
        }
        parsed = tf.io.parse_example(examples, spec)
        return {
            features.IMAGE_EMBEDDING_OUTPUT: self._image(parsed[features.IMAGE_FEATURES_KEY]),
            features.TEXT_EMBEDDING_OUTPUT: self._text(parsed[features.CAPTION_KEY]),
        }


def save_encoder(encoder: ToyEncoder, export_dir: str | os.PathLike,
                 extra_signatures: dict[str, tf.types.experimental.ConcreteFunction] | None = None,
                 ) -> None:
    """Saves ``encoder`` with the three contract signatures (``embed_image`` fixes D).

    Args:
        encoder: the module to save.
        export_dir: destination.
        extra_signatures: more signatures by name (e.g. an ``embed_image_bytes``).

    """
    image_spec = tf.TensorSpec([None, encoder.feature_dim], tf.float32,
                               name=features.IMAGE_FEATURES_KEY)
    signatures = {
        features.SERVING_DEFAULT_SIGNATURE: encoder.serve_examples.get_concrete_function(),
        features.EMBED_TEXT_SIGNATURE: encoder.embed_text.get_concrete_function(),
        features.EMBED_IMAGE_SIGNATURE: tf.function(
            encoder.embed_image.python_function).get_concrete_function(image_spec),
        **(extra_signatures or {}),
    }
    tf.saved_model.save(encoder, str(export_dir), signatures=signatures)


def write_toy_encoder(export_dir: str | os.PathLike, feature_dim: int = 16,
                      embedding_dim: int = 8, vocabulary: tuple[str, ...] = DEFAULT_VOCABULARY,
                      seed: int = 0) -> pathlib.Path:
    """Writes the toy encoder SavedModel to ``export_dir`` and returns its path.

    Args:
        export_dir: destination directory (created; must not hold a SavedModel yet).
        feature_dim: image feature width D of ``embed_image`` / ``serving_default``.
        embedding_dim: embedding width d.
        vocabulary: the known tokens; anything else maps to the single OOV bucket.
        seed: seed of the fixed random weights.

    Returns:
        ``export_dir`` as a path.

    """
    export_dir = pathlib.Path(export_dir)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = os.path.join(tmp, VOCAB_NAME)  # the real model's asset name
        pathlib.Path(vocab_file).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        save_encoder(ToyEncoder(vocab_file, len(vocabulary), feature_dim, embedding_dim, seed),
                     export_dir)
    return export_dir


def write_toy_bytes_encoder(export_dir: str | os.PathLike, tflite_path: str,
                            embedding_dim: int = 8, seed: int = 0) -> pathlib.Path:
    """Writes the toy encoder with ``embed_image_bytes`` over a TFLite backbone; returns the path.

    ``embed_image`` takes the backbone's features (D = the backbone's output width). Like the
    exported encoder, ``image_features_from_bytes`` is kept as a plain function so that the
    contract check compares ``embed_image_bytes`` with ``embed_image`` on the same features.

    Args:
        export_dir: destination directory.
        tflite_path: the quantized TFLite CNN (``trainer.model.image_backbone.ImageBackbone``).
        embedding_dim: embedding width d.
        seed: seed of the fixed random weights.

    """
    from trainer.model.image_backbone import (
        ImageBackbone,  # TFLite reader: only this writer needs it
    )

    backbone = ImageBackbone(tflite_path)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = pathlib.Path(tmp) / VOCAB_NAME
        vocab_file.write_text("\n".join(DEFAULT_VOCABULARY) + "\n", encoding="utf-8")
        encoder = ToyEncoder(str(vocab_file), len(DEFAULT_VOCABULARY), backbone.feature_dim,
                             embedding_dim, seed)
        encoder.backbone = backbone
        bytes_spec = tf.TensorSpec([None], tf.string, name=features.IMAGE_BYTES_INPUT)
        encoder.image_features_from_bytes = tf.function(
            encoder.backbone.__call__, input_signature=[bytes_spec]).get_concrete_function()
        embed_bytes = tf.function(
            lambda image_bytes: {features.IMAGE_EMBEDDING_OUTPUT: encoder._image(
                encoder.image_features_from_bytes(image_bytes))}, input_signature=[bytes_spec])
        save_encoder(encoder, export_dir,
                     {features.EMBED_IMAGE_BYTES_SIGNATURE: embed_bytes.get_concrete_function()})
    return pathlib.Path(export_dir)
