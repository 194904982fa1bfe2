"""Speed and memory benchmarks that print figures and ratios measured side by side.

Importing this package selects legacy Keras 2 (``TF_USE_LEGACY_KERAS=1``) before any TensorFlow
import, as the ``trainer`` package does.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
