"""``python -m pipeline search``: query the pushed search model from the command line.

Loads ``<serving_dir>/<model_name>_search/<version>/`` (the latest version unless given), runs
its ``search`` signature on the query and prints the top-k images with their scores and first
caption. Imports TensorFlow only (no TFX), so it starts quickly.
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

import tensorflow as tf

from serving.gallery import METADATA_FILE
from serving.publish import list_versions
from serving.savedmodel import load_saved_model
from serving.search_model import (
    CAPTIONS_OUTPUT,
    IDS_OUTPUT,
    INDEX_SUBDIR,
    SCORES_OUTPUT,
    SEARCH_SIGNATURE,
    search_model_name,
)
from trainer import features

DEFAULT_SERVING_DIR = "serving_model"
DEFAULT_MODEL_NAME = "xmodal"


def _parser(default_serving_dir: str, default_model_name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline search",
        description="Text → top-k gallery images with the pushed search model.")
    parser.add_argument("query", help="the caption to search for")
    parser.add_argument("--serving-dir", default=default_serving_dir,
                        help="the Pusher's serving directory (default: %(default)s)")
    parser.add_argument("--model-name", default=default_model_name,
                        help="the served encoder's name (default: %(default)s)")
    parser.add_argument("--version", type=int, default=None,
                        help="search model version (default: the latest)")
    parser.add_argument("-k", "--k", type=int, default=5, help="results (default: 5)")
    return parser


def resolve_search_model(serving_dir: str, model_name: str, version: int | None) -> str:
    """The folder of the requested (default: latest) search model version.

    Raises:
        FileNotFoundError: no such version (the message lists the available ones).

    """
    base = os.path.join(serving_dir, search_model_name(model_name))
    versions = list_versions(base)
    if not versions or (version is not None and version not in versions):
        wanted = "any version" if version is None else f"version {version}"
        raise FileNotFoundError(f"no search model {wanted} under {base} (found {versions}); "
                                "run the pipeline so that the Pusher publishes one")
    return os.path.join(base, str(version if version is not None else versions[-1]))


def search(model_dir: str, query: str, k: int) -> tuple[list[tuple[str, float, str]], float]:
    """Runs the ``search`` signature; returns ``(id, score, caption)`` rows and seconds taken.

    Raises:
        ValueError: ``k`` exceeds the number of results the model was exported with.

    """
    signature = load_saved_model(model_dir).signatures[SEARCH_SIGNATURE]
    start = time.perf_counter()
    out = signature(**{features.CAPTION_KEY: tf.constant(query)})
    seconds = time.perf_counter() - start
    available = int(out[IDS_OUTPUT].shape[0])
    if k > available:
        raise ValueError(f"asked for k={k} results, {model_dir} returns at most {available}")
    rows = zip(out[IDS_OUTPUT].numpy()[:k], out[SCORES_OUTPUT].numpy()[:k],
               out[CAPTIONS_OUTPUT].numpy()[:k], strict=True)
    return [(i.decode("utf-8"), float(s), c.decode("utf-8")) for i, s, c in rows], seconds


def main(argv: Sequence[str] | None = None, default_serving_dir: str = DEFAULT_SERVING_DIR,
         default_model_name: str = DEFAULT_MODEL_NAME) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input or no model)."""
    args = _parser(default_serving_dir, default_model_name).parse_args(argv)
    if args.k < 1:
        print("error: --k must be >= 1", file=sys.stderr)
        return 2
    try:
        model_dir = resolve_search_model(args.serving_dir, args.model_name, args.version)
        load_start = time.perf_counter()
        rows, seconds = search(model_dir, args.query, args.k)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    load_seconds = time.perf_counter() - load_start - seconds
    with open(os.path.join(model_dir, INDEX_SUBDIR, METADATA_FILE), encoding="utf-8") as f:
        metadata = json.load(f)
    print(f'query: "{args.query}"  ({model_dir}: {metadata["num_images"]} images, encoder '
          f'{metadata["model_name"]} version {metadata["model_version"]})')
    for rank, (image_id, score, caption) in enumerate(rows, start=1):
        print(f"{rank:2d}. {score:+.4f}  {image_id}  {caption}")
    print(f"search: {seconds * 1000:.1f} ms after a {load_seconds:.1f} s load and warm-up")
    return 0
