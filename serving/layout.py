"""Names in a serving directory and the Beam jobs' defaults, free of TensorFlow and Beam.

What a model's search model is called, what marks a version folder as one, which names may
become a folder there (a model's, a collection index's), and how the jobs that write there run
by default. The pipeline's configuration check runs before any heavy import and refuses a model
name that would collide with a search model, so these cannot live beside the search model's
TensorFlow code or the index job's Beam code.
"""

import os
import re

# A model's search model is served as ``<model_name>_search`` (``search_model.search_model_name``).
SEARCH_MODEL_SUFFIX = "_search"
# Where a search model version keeps its gallery index; only search models have it.
INDEX_SUBDIR = os.path.join("assets.extra", "gallery")

# Longest file name on common filesystems (bytes).
NAME_MAX = 255
# A plain name: one folder, carried unquoted by the command line, logs and URLs.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PLAIN_NAME_RULE = "ASCII letters, digits, '.', '_' and '-', starting with a letter or digit"
# Beam in-process, for the pipeline's components and the collection index job alike: the
# multi-processing DirectRunner re-imports TensorFlow in every worker, which is slower on data
# of this size; --beam-args scales out (or runs on Dataflow).
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


def is_plain_name(name: object, longest: int = NAME_MAX) -> bool:
    """Whether ``name`` is a plain folder name (``PLAIN_NAME_RULE``) of at most ``longest``."""
    return isinstance(name, str) and bool(_PLAIN_NAME.fullmatch(name)) and len(name) <= longest
