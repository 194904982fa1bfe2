"""Loading exported SavedModels in-process.

A WordPiece text tower (``trainer.wordpiece``) puts TF Text ops in the graph; they are registered
only once ``tensorflow_text`` is imported, so every in-process loader goes through here.
"""

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the TF Text ops that WordPiece graphs use)


def load_saved_model(saved_model_dir: str) -> tf.Module:
    """``tf.saved_model.load`` with the custom ops of this project registered."""
    return tf.saved_model.load(str(saved_model_dir))
