"""The triplet loss kinds (``trainer.losses``), importable without TensorFlow for config checks."""

LOSS_KINDS = ("sh", "hn", "fhn", "mhn")
