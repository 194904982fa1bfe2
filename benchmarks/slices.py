"""Small Flickr-format data slices (real Flickr8k rows) for end-to-end tests and benchmarks."""

from __future__ import annotations

import pathlib

import numpy as np

TOKEN_FILE = "Flickr8k.token.txt"
LISTS = {"train": "Flickr_8k.trainImages.txt", "eval": "Flickr_8k.devImages.txt"}


def write_flickr_slice(
    source: pathlib.Path,
    out: pathlib.Path,
    *,
    n_train: int,
    n_eval: int,
    offset: int = 0,
) -> pathlib.Path:
    """Writes a Flickr8k-layout folder with the first images of each split of ``source``.

    Args:
      source: the real Flickr8k folder (token file, split lists, features/).
      out: the folder to write (created).
      n_train: train images to keep (5 captions each).
      n_eval: eval images to keep.
      offset: skip this many train images first (a different slice for a later span).

    Returns:
      ``out``.

    """
    out.mkdir(parents=True, exist_ok=True)
    train = _lines(source / LISTS["train"])[offset : offset + n_train]
    dev = _lines(source / LISTS["eval"])[:n_eval]
    keep = set(train) | set(dev)
    (out / LISTS["train"]).write_text("\n".join(train) + "\n")
    (out / LISTS["eval"]).write_text("\n".join(dev) + "\n")
    captions = [line for line in _lines(source / TOKEN_FILE) if line.split("#", 1)[0] in keep]
    (out / TOKEN_FILE).write_text("\n".join(captions) + "\n", encoding="utf-8")
    names = _lines(source / "features" / "mobilenet_v2.names.txt")
    matrix = np.load(source / "features" / "mobilenet_v2.npy", mmap_mode="r")
    rows = [i for i, name in enumerate(names) if name in keep]
    (out / "features").mkdir(exist_ok=True)
    np.save(out / "features" / "mobilenet_v2.npy", np.asarray(matrix[rows]))
    (out / "features" / "mobilenet_v2.names.txt").write_text(
        "\n".join(names[i] for i in rows) + "\n"
    )
    return out


def _lines(path: pathlib.Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
