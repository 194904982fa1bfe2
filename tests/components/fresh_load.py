"""Embeds the tiny eval examples with an exported model in a fresh interpreter (run as a script).

Usage: ``python -m tests.components.fresh_load MODULE LOADER MODEL_URI``

* MODULE: the one module imported before the model is loaded (what the test is about).
* LOADER: ``saved_model`` (``tf.saved_model.load``, as TFMA loads a model) or ``eval_report``
  (``components.eval_report.executor.embed_with``, the EvalReport executor's own loader).
* MODEL_URI: a Model artifact URI (the SavedModel is under ``Format-Serving``).

Prints ``{"caption_ids": [...], "text": [[...], ...]}`` (JSON) on success.

TFMA (``utils/model_util.py``), TFT (``saved_transform_io``) and tfx_bsl (``run_inference``) try
to import ``tensorflow_text`` themselves and ignore an ImportError. That registers the TF-Text ops
wherever those libraries are imported, but it is their undocumented side effect, not this
project's guarantee, so this script refuses imports of ``tensorflow_text`` made directly by
installed libraries (as if it were not installed for them): only project code can register
the ops, and a test sees whether MODULE does.
"""

from __future__ import annotations

import importlib
import importlib.abc
import json
import os
import sys

_REFUSED = "tensorflow_text"


def _importer_is_library() -> bool:
    """Whether the code that triggered the running import lives in an installed library."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith("<frozen importlib") or "importlib" + os.sep in name
                or name == __file__):
            return "site-packages" in name
        frame = frame.f_back
    return False


class RefuseLibraryImports(importlib.abc.MetaPathFinder):
    """Raises ImportError for ``tensorflow_text`` when an installed library imports it."""

    def find_spec(self, fullname, path, target=None):  # noqa: D102  (MetaPathFinder API)
        if fullname == _REFUSED and _importer_is_library():
            raise ImportError(f"{_REFUSED} refused to library code (tests/components/fresh_load)")
        return None


def main(argv: list[str]) -> int:
    """Imports MODULE, loads MODEL_URI with LOADER and prints the text embeddings."""
    module, loader, model_uri = argv
    sys.meta_path.insert(0, RefuseLibraryImports())
    importlib.import_module(module)
    from tfx.types import standard_artifacts

    from components.eval_report import data
    from tests.components import tiny_retrieval_model as tiny
    from trainer import features

    records = [tiny.serialize(row) for row in tiny.examples()]
    if loader == "eval_report":
        from components.eval_report import executor

        model = standard_artifacts.Model()
        model.uri = model_uri
        embeddings = executor.embed_with(model, records)
    elif loader == "saved_model":
        import tensorflow as tf
        from tfx.utils import path_utils

        loaded = tf.saved_model.load(path_utils.serving_model_path(model_uri))
        embeddings = data.embed_examples(loaded.signatures[features.SERVING_DEFAULT_SIGNATURE],
                                         records)
    else:
        raise ValueError(f"LOADER must be 'saved_model' or 'eval_report', got {loader!r}")
    print(json.dumps({"caption_ids": list(embeddings.caption_ids),
                      "text": embeddings.text.tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
