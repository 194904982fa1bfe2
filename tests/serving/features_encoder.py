"""A features-mode encoder SavedModel for tests: ``embed_text`` takes ``caption_features``."""

import numpy as np
import tensorflow as tf


class FeaturesEncoder(tf.Module):
    """Linear towers: image features [N, D] and caption features [N, D_c] -> unit rows [N, d].

    Args:
        feature_dim: D.
        embedding_dim: d.
        text_dim: D_c.
        serve_reversed: ``serving_default`` returns the text rows in reverse order, so that it
            disagrees with ``embed_text`` (a broken export).

    """

    def __init__(self, feature_dim: int, embedding_dim: int, text_dim: int,
                 serve_reversed: bool = False):
        super().__init__()
        rng = np.random.default_rng(3)
        self.image = tf.Variable(rng.normal(size=(feature_dim, embedding_dim)), dtype=tf.float32)
        self.text = tf.Variable(rng.normal(size=(text_dim, embedding_dim)), dtype=tf.float32)
        self.feature_dim, self.text_dim = feature_dim, text_dim
        self.serve_reversed = serve_reversed

    def embed_text(self, caption_features):
        """Caption features [N, D_c] -> {text_embedding: [N, d]}."""
        return {"text_embedding": tf.math.l2_normalize(caption_features @ self.text, axis=1)}

    def embed_image(self, image_features):
        """Image features [N, D] -> {image_embedding: [N, d]}."""
        return {"image_embedding": tf.math.l2_normalize(image_features @ self.image, axis=1)}

    def serve(self, examples):
        """Serialized tf.Examples [N] -> both embeddings."""
        parsed = tf.io.parse_example(examples, {
            "image_features": tf.io.FixedLenFeature([self.feature_dim], tf.float32),
            "caption_features": tf.io.FixedLenFeature([self.text_dim], tf.float32)})
        text = self.embed_text(parsed["caption_features"])["text_embedding"]
        if self.serve_reversed:
            text = tf.reverse(text, axis=[0])
        return {**self.embed_image(parsed["image_features"]), "text_embedding": text}

    def save(self, path) -> str:
        """Saves the three contract signatures to ``path``; returns it."""
        specs = {"embed_text": tf.TensorSpec([None, self.text_dim], tf.float32,
                                             name="caption_features"),
                 "embed_image": tf.TensorSpec([None, self.feature_dim], tf.float32,
                                              name="image_features"),
                 "serving_default": tf.TensorSpec([None], tf.string, name="examples")}
        functions = {"embed_text": self.embed_text, "embed_image": self.embed_image,
                     "serving_default": self.serve}
        tf.saved_model.save(self, str(path), signatures={
            name: tf.function(functions[name]).get_concrete_function(spec)
            for name, spec in specs.items()})
        return str(path)
