"""TF Serving configuration, clients (REST, gRPC, in-process) and the gallery index."""

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TensorFlow import)
