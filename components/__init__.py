"""Custom TFX components and executors (caption ExampleGen, retrieval metrics, featurizer, ...)."""

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TensorFlow import)
