"""Model code: feature contract, Transform preprocessing, towers, losses, mining, metrics, export.

This project uses legacy Keras 2 (``tf_keras``) everywhere. ``TF_USE_LEGACY_KERAS`` must be set
before TensorFlow is first imported; importing this package sets it (when nothing set it yet), and
``trainer.task.run_fn`` asserts the choice.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
