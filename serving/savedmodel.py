"""Loading exported SavedModels in-process, and the one place that registers their custom ops.

A WordPiece text tower (``trainer.tokens.wordpiece``) puts TF Text ops in the graph; they are
registered
only once ``tensorflow_text`` is imported. Importing this module registers them: every in-process
loader goes through ``load_saved_model`` (or imports this module before a library loads the
model, as the TFMA metric module does), and distributed Beam workers import
``CUSTOM_OP_MODULES`` as ``--beam_plugins`` (``pipeline.pipeline``).
"""

import tensorflow as tf
import tensorflow_text

# Modules whose import registers the custom ops that exported graphs may contain.
CUSTOM_OP_MODULES = (tensorflow_text.__name__,)


def load_saved_model(saved_model_dir: str) -> tf.Module:
    """``tf.saved_model.load`` with the custom ops of this project registered."""
    return tf.saved_model.load(str(saved_model_dir))
