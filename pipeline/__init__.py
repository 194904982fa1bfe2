"""The TFX pipeline: create_pipeline(), configuration, runners and the command line."""

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TensorFlow import)
