"""Export: a ``tf.Module`` with the Transform graph, both towers and the serving signatures.

Signatures (docs/architecture.md): ``serving_default`` (serialized tf.Examples -> both embeddings),
``embed_text`` (raw caption strings -> text embeddings; with the ``linear`` text tower the input
is the raw ``caption_features`` instead), ``embed_image`` (raw image features -> image
embeddings) and ``embed_image_bytes`` (encoded JPEG/PNG bytes -> image embeddings, through the
in-graph ``trainer.model.image_backbone``, so clients need no featurizer of their own). The last
one is
exported when the image features are the backbone's (same width D); an encoder trained on other
features (e.g. the synthetic data set) has no image-bytes input, and export logs why.
All outputs are L2-normalized [N, d]. The towers stay attributes ``image_tower`` and
``text_tower`` so that a later run can warm-start from ``<saved_model>/variables/variables``.
"""

from __future__ import annotations

import functools
import logging

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from trainer import features
from trainer.model.image_backbone import ImageBackbone
from trainer.preprocessing import conform_to_raw_spec


class RetrievalModule(tf.Module):
    """Raw inputs in, L2-normalized embeddings out (Transform layer inside)."""

    def __init__(self, image_tower: keras.Model, text_tower: keras.Model,
                 tf_transform_output: tft.TFTransformOutput, text_raw_key: str,
                 image_backbone: ImageBackbone | None = None):
        super().__init__(name="retrieval_module")
        self.image_tower = image_tower
        self.image_backbone = image_backbone
        if image_backbone is not None:
            # Saved as a plain function (not a signature) so that checks can compare
            # embed_image_bytes with embed_image on the backbone's own features. The signature
            # calls this one trace too, so the backbone's weights (graph constants) are stored
            # once; a tf.function would be traced again when saved, storing them twice.
            self.image_features_from_bytes = tf.function(
                image_backbone.__call__,
                input_signature=[tf.TensorSpec([None], tf.string, name=features.IMAGE_BYTES_INPUT)]
            ).get_concrete_function()
        self.text_tower = text_tower
        self.tft_layer = tf_transform_output.transform_features_layer()
        spec = tf_transform_output.raw_feature_spec()
        self._text_raw_key = text_raw_key
        self._raw_spec = {key: spec[key] for key in (features.IMAGE_FEATURES_KEY, text_raw_key)}

    def _transform(self, raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return self.tft_layer(conform_to_raw_spec(raw, self._raw_spec))

    def embed_images(self, image_features: tf.Tensor) -> dict[str, tf.Tensor]:
        """Raw image features [N, D] -> {IMAGE_EMBEDDING_OUTPUT: [N, d]}."""
        transformed = self._transform({features.IMAGE_FEATURES_KEY: image_features})
        embedding = self.image_tower(transformed[features.IMAGE_FEATURES_XF], training=False)
        return {features.IMAGE_EMBEDDING_OUTPUT: embedding}

    def embed_image_bytes(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encoded JPEG/PNG images [N] -> {IMAGE_EMBEDDING_OUTPUT: [N, d]}."""
        return self.embed_images(self.image_features_from_bytes(image_bytes))

    def embed_texts(self, text_input: tf.Tensor) -> dict[str, tf.Tensor]:
        """Raw captions [N] (or caption features [N, D_c]) -> {TEXT_EMBEDDING_OUTPUT: [N, d]}."""
        transformed = self._transform({self._text_raw_key: text_input})
        return {features.TEXT_EMBEDDING_OUTPUT: self.text_tower(transformed, training=False)}

    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Serialized raw tf.Examples [N] -> both embeddings [N, d]."""
        parsed = tf.io.parse_example(examples, self._raw_spec)
        text_input = parsed[self._text_raw_key]
        if self._text_raw_key == features.CAPTION_KEY:
            text_input = tf.reshape(text_input, [-1])
        return {**self.embed_images(parsed[features.IMAGE_FEATURES_KEY]),
                **self.embed_texts(text_input)}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """The serving signatures, keyed by their names."""
        image_dim = self._raw_spec[features.IMAGE_FEATURES_KEY].shape[-1]
        if self._text_raw_key == features.CAPTION_KEY:
            text_spec = tf.TensorSpec([None], tf.string, name=features.CAPTION_KEY)
        else:
            text_dim = self._raw_spec[self._text_raw_key].shape[-1]
            text_spec = tf.TensorSpec([None, text_dim], tf.float32, name=self._text_raw_key)
        examples_spec = tf.TensorSpec([None], tf.string, name=features.EXAMPLES_INPUT)
        image_spec = tf.TensorSpec([None, image_dim], tf.float32, name=features.IMAGE_FEATURES_KEY)
        # No AutoGraph: these have no tensor-dependent Python control flow, and converting them
        # took a third of the export.
        trace = functools.partial(tf.function, autograph=False)
        signatures = {
            features.SERVING_DEFAULT_SIGNATURE:
                trace(self.serve_examples).get_concrete_function(examples_spec),
            features.EMBED_TEXT_SIGNATURE: trace(self.embed_texts).get_concrete_function(text_spec),
            features.EMBED_IMAGE_SIGNATURE:
                trace(self.embed_images).get_concrete_function(image_spec),
        }
        if self.image_backbone is not None:
            bytes_spec = tf.TensorSpec([None], tf.string, name=features.IMAGE_BYTES_INPUT)
            signatures[features.EMBED_IMAGE_BYTES_SIGNATURE] = trace(
                self.embed_image_bytes).get_concrete_function(bytes_spec)
        return signatures


def load_image_backbone(tflite_path: str, image_dim: int) -> ImageBackbone | None:
    """The backbone for ``embed_image_bytes``, or None when its features are not D wide.

    Args:
        tflite_path: the backbone's TFLite model (``TrainerConfig.image_backbone``); empty
            exports no image-bytes input.
        image_dim: D, the width of the image features the towers were trained on.

    Raises:
        FileNotFoundError: ``tflite_path`` names no file.

    """
    if not tflite_path:
        return None
    backbone = ImageBackbone(tflite_path)
    if backbone.feature_dim != image_dim:
        logging.warning("no embed_image_bytes signature: the image features are %d wide, the "
                        "backbone %s outputs %d", image_dim, tflite_path, backbone.feature_dim)
        return None
    return backbone


def export_model(image_tower: keras.Model, text_tower: keras.Model,
                 tf_transform_output: tft.TFTransformOutput, text_raw_key: str,
                 export_dir: str, image_backbone: str = "") -> RetrievalModule:
    """Saves the towers with the Transform graph as a SavedModel with its signatures.

    Args:
        image_tower: trained image tower.
        text_tower: trained text tower.
        tf_transform_output: the Transform output whose graph goes inside.
        text_raw_key: raw feature the text tower reads (``CAPTION_KEY``, or
            ``CAPTION_FEATURES_KEY`` for the ``linear`` text tower).
        export_dir: destination (``fn_args.serving_model_dir``).
        image_backbone: the TFLite backbone behind ``embed_image_bytes`` (see
            ``load_image_backbone``); empty exports without that signature.

    Returns:
        The saved module.

    Raises:
        FileNotFoundError: ``image_backbone`` names no file.

    """
    image_dim = tf_transform_output.raw_feature_spec()[features.IMAGE_FEATURES_KEY].shape[-1]
    module = RetrievalModule(image_tower, text_tower, tf_transform_output, text_raw_key,
                             load_image_backbone(image_backbone, image_dim))
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    return module
