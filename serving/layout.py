"""Search-model names in a serving directory, free of TensorFlow.

What a model's search model is called and what marks a version folder as one. The pipeline's
configuration check runs before any heavy import and refuses a model name that would collide
with a search model, so these names cannot live beside the search model's TensorFlow code.
"""

import os

# A model's search model is served as ``<model_name>_search`` (``search_model.search_model_name``).
SEARCH_MODEL_SUFFIX = "_search"
# Where a search model version keeps its gallery index; only search models have it.
INDEX_SUBDIR = os.path.join("assets.extra", "gallery")
