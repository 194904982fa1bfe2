"""``python -m pipeline search``: query the pushed search model from the command line.

Loads ``<serving_dir>/<model_name>_search/<version>/`` (the latest version unless given) and
prints the top-k results with their scores and display caption:

* ``--mode text2image`` (default): the query is a caption; ``search`` signature.
* ``--mode text2text``: the query is a caption; ``search_captions`` signature.
* ``--mode image2image``: the query is a gallery image id; its stored embedding is searched
  against the gallery (intra-modal), with the index in ``assets.extra/gallery``.
* ``--image PHOTO.jpg [PHOTO ...]`` (instead of a text query): each photo's bytes go through
  the served graph (decode, backbone, image tower); ``search_by_image`` finds gallery images
  (the default, ``--mode image2image``) and ``search_captions_by_image`` captions (``--mode
  image2text``). Each file that cannot be searched (missing, empty, not a JPEG/PNG, truncated,
  too many pixels) is one ``error:`` line naming it on stderr, and the other files are still
  searched; the exit status is 2 when no file could be. Only a regular file of at most 4 MiB is
  read (``search_photos.read_photo_file``). CMYK and grayscale JPEGs are converted to RGB.

An empty query, or one that is not valid UTF-8 (bytes the terminal's encoding could not decode),
is refused (exit 2). A ``models.config`` in the serving directory that TF Serving could not parse
is a warning: this command reads the model folder directly, a model server would not start.
With a token text tower (``mean``, ``gru``), a query none of whose words is in the model's
vocabulary only reaches the out-of-vocabulary buckets, so its results say nothing about the query:
a warning says so. A WordPiece (``minilm``) tower splits any word into known pieces, so that
warning never applies to it.

Imports TensorFlow only (no TFX), so it starts quickly. The model is warmed up with one query
before the timed one, as TF Serving does with the model's warm-up file. ``python -m pipeline
search`` sends library messages (TensorFlow's C++ logging, Python warnings) to a log file.
"""

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import numpy as np
import tensorflow as tf

from serving.collection.cli import search_index
from serving.gallery import GalleryIndex, load_index
from serving.models_config import MODELS_CONFIG_FILE, read_models_config
from serving.publish import list_versions
from serving.savedmodel import load_saved_model
from serving.search import chunked_top_k
from serving.search_model import (
    INDEX_SUBDIR,
    SEARCH_BY_IMAGE_SIGNATURE,
    SEARCH_CAPTIONS_BY_IMAGE_SIGNATURE,
    SEARCH_CAPTIONS_SIGNATURE,
    SEARCH_SIGNATURE,
    WARMUP_QUERY,
    result_rows,
    search_model_name,
)
from serving.search_photos import Row, search_photos
from trainer import features
from trainer.tokens.text import tokenize_py
from trainer.tokens.transform_config import VOCAB_NAME

DEFAULT_SERVING_DIR = "runs/serving"
DEFAULT_MODEL_NAME = "xmodal"
TEXT_SIGNATURES = {"text2image": SEARCH_SIGNATURE, "text2text": SEARCH_CAPTIONS_SIGNATURE}
IMAGE_SIGNATURES = {"image2image": SEARCH_BY_IMAGE_SIGNATURE,
                    "image2text": SEARCH_CAPTIONS_BY_IMAGE_SIGNATURE}
MODES = ("text2image", "image2image", "text2text", "image2text")
# The op of a WordPiece tokenizer in a SavedModel graph (the ``minilm`` tower, tensorflow_text).
WORDPIECE_OP = b"WordpieceTokenizeWithOffsets"


def _parser(default_serving_dir: str, default_model_name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline search", description="Top-k search with the pushed model.",
        allow_abbrev=False)
    query = parser.add_mutually_exclusive_group()
    query.add_argument("query", nargs="?",
                       help="a caption, or a gallery image id with --mode image2image")
    query.add_argument("--image", metavar="PHOTO", nargs="+",
                       help="search with each of these JPEG/PNG files instead of a text query")
    parser.add_argument("--serving-dir", default=default_serving_dir,
                        help="the Pusher's serving directory (default: %(default)s)")
    parser.add_argument("--model-name", default=default_model_name,
                        help="the served encoder's name (default: %(default)s)")
    parser.add_argument("--version", type=int, default=None,
                        help="search model version (default: the latest)")
    parser.add_argument("-k", "--k", type=int, default=5, help="results (default: 5)")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="default: text2image for a text query, image2image with --image")
    parser.add_argument("--index", metavar="NAME",
                        help="search this collection index (python -m pipeline index) instead "
                        "of the gallery; --version then names the encoder version")
    return parser


def resolve_mode(query: str | None, image: Sequence[str] | None, mode: str | None) -> str:
    """The search mode of a command line (text query xor ``--image``).

    Raises:
        ValueError: neither or an empty query, or a mode that does not take the given query.

    """
    if image is None and not (query or "").strip():
        raise ValueError("the query is empty: give a caption (or an image id with --mode "
                         "image2image, or --image PHOTO)")
    if image is None:
        check_utf8(query)
        if mode in IMAGE_SIGNATURES and mode != "image2image":
            raise ValueError(f"--mode {mode} searches with a photo: give --image PHOTO")
        return mode or "text2image"
    if mode is not None and mode not in IMAGE_SIGNATURES:
        raise ValueError(f"--mode {mode} takes a text query, not --image")
    return mode or "image2image"


def check_utf8(query: str) -> None:
    """Refuses a query holding characters that UTF-8 cannot encode.

    Python decodes command-line bytes that are not valid UTF-8 into lone surrogates (PEP 383);
    TensorFlow cannot turn those into a string tensor.

    Raises:
        ValueError: naming the first bad bytes and their position in the query.

    """
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = query[err.start:err.end]
        try:
            shown = repr(bad.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:  # a lone surrogate that did not come from undecodable bytes
            shown = ascii(bad)
        raise ValueError(f"the query is not valid UTF-8: {shown} at character {err.start}; "
                         "give the text in UTF-8 (check the terminal's encoding)") from err


def models_config_warning(serving_dir: str) -> str | None:
    """A warning when ``<serving_dir>/models.config`` exists but TF Serving could not parse it."""
    try:
        read_models_config(os.path.join(serving_dir, MODELS_CONFIG_FILE))
    except (OSError, ValueError) as err:
        return (f"warning: {err}. This search reads the model folder directly, but a model "
                "server started with that file would fail")
    return None


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


def unknown_query_warning(model_dir: str, query: str) -> str | None:
    """A warning when a token-tower model knows none of ``query``'s words, else None.

    Nothing is checked for a WordPiece tower (its pieces are always known) or for a model
    without the token vocabulary asset (``assets/caption_tokens``).
    """
    vocab_path = os.path.join(model_dir, "assets", VOCAB_NAME)
    if not os.path.isfile(vocab_path):
        return None
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as graph:
        if WORDPIECE_OP in graph.read():
            return None
    with open(vocab_path, encoding="utf-8") as vocab_file:
        vocabulary = set(vocab_file.read().splitlines())
    tokens = tokenize_py(query)
    if any(token in vocabulary for token in tokens):
        return None
    return (f"warning: no word of the query ({' '.join(tokens)}) is in the model's vocabulary "
            f"of {len(vocabulary)} tokens: the results below do not reflect the query")


def search_text(model_dir: str, signature_name: str, query: str, k: int) -> tuple[list[Row], float]:
    """Loads and warms up a text signature, then runs ``query``.

    Returns:
        ``(id, score, caption)`` rows, best first, and the seconds the query took.

    Raises:
        ValueError: the model lacks the signature, or ``k`` exceeds what it returns.

    """
    signatures = load_saved_model(model_dir).signatures
    if signature_name not in signatures:
        raise ValueError(f"{model_dir} has no {signature_name!r} signature (its gallery index "
                         "holds no captions)")
    signature = signatures[signature_name]
    signature(**{features.CAPTION_KEY: tf.constant(WARMUP_QUERY)})  # graph initialization
    start = time.perf_counter()
    out = signature(**{features.CAPTION_KEY: tf.constant(query)})
    seconds = time.perf_counter() - start
    return result_rows(out, k, model_dir), seconds


def search_image_id(index: GalleryIndex, image_id: str, k: int) -> tuple[list[Row], float]:
    """Top-k gallery images for the stored embedding of gallery image ``image_id``.

    Raises:
        ValueError: ``image_id`` is not in the gallery.

    """
    rows = np.flatnonzero(index.image_ids == image_id)
    if rows.size == 0:
        raise ValueError(f"image id {image_id!r} is not in the gallery ({len(index.image_ids)} "
                         f"images, e.g. {index.image_ids[0]!r})")
    gallery = tf.constant(index.image_embeddings)
    query = tf.constant(index.image_embeddings[rows[:1]])
    start = time.perf_counter()
    scores, indices = chunked_top_k(query, gallery, k)
    seconds = time.perf_counter() - start
    return [(str(index.image_ids[i]), float(s), str(index.image_captions[i]))
            for s, i in zip(scores.numpy()[0], indices.numpy()[0], strict=True)], seconds


def _run_query(args: argparse.Namespace, mode: str, model_dir: str, index: GalleryIndex,
               terminal: TextIO) -> tuple[list[Row], float]:
    """The rows and query seconds of the resolved ``mode``."""
    if mode == "image2image":
        return search_image_id(index, args.query, args.k)
    warning = unknown_query_warning(model_dir, args.query)
    if warning:
        print(warning, file=terminal)
    return search_text(model_dir, TEXT_SIGNATURES[mode], args.query, args.k)


def _print_results(mode: str, query: str, model_dir: str, index: GalleryIndex, rows: list[Row],
                   seconds: tuple[float, float]) -> None:
    """Prints the ranked ``rows``; ``seconds``: (the search, the model's load and warm-up)."""
    print(f"{mode} query: {query}  ({model_dir}: {len(index.image_ids)} images, "
          f"encoder {index.model_name} version {index.model_version})")
    for rank, (item_id, score, caption) in enumerate(rows, start=1):
        print(f"{rank:2d}. {score:+.4f}  {item_id}  {caption}")
    search, load = seconds
    print(f"search: {search * 1000:.1f} ms after a {load:.1f} s load and warm-up")


def _photo_queries(args: argparse.Namespace, mode: str, model_dir: str, index: GalleryIndex,
                   load_start: float, terminal: TextIO) -> int:
    """Searches with every ``--image`` file; returns the exit status.

    Results are printed for each photo that could be searched and one ``error:`` line for each
    other file; the status is 0 when at least one photo was searched, else 2. A file name that
    is not valid UTF-8 is shown with its undecodable bytes escaped.
    """
    results = search_photos(model_dir, IMAGE_SIGNATURES[mode], args.image, args.k)
    load_seconds = time.perf_counter() - load_start - sum(r.seconds for r in results)
    for result in results:
        if result.error:
            print(f"error: {result.error}", file=terminal)
        else:
            shown = os.fsencode(result.path).decode("utf-8", "backslashreplace")
            _print_results(mode, f"image {shown}", model_dir, index, result.rows,
                           (result.seconds, load_seconds))
    return 0 if any(not result.error for result in results) else 2


def main(argv: Sequence[str] | None = None, default_serving_dir: str = DEFAULT_SERVING_DIR,
         default_model_name: str = DEFAULT_MODEL_NAME, terminal: TextIO | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input or no model).

    Args:
        argv: the arguments after ``search``.
        default_serving_dir: ``--serving-dir`` when not given.
        default_model_name: ``--model-name`` when not given.
        terminal: where errors, warnings and argument errors go (default ``sys.stderr``);
            ``python -m pipeline search`` passes the terminal while library messages written to
            ``sys.stderr`` go to a log file.

    """
    terminal = terminal or sys.stderr
    with contextlib.redirect_stderr(terminal):  # argparse writes its errors to sys.stderr
        args = _parser(default_serving_dir, default_model_name).parse_args(argv)
    try:
        if args.k < 1:
            raise ValueError("--k must be >= 1")
        mode = resolve_mode(args.query, args.image, args.mode)
        if args.index:
            return search_index(args, mode, terminal)
        model_dir = resolve_search_model(args.serving_dir, args.model_name, args.version)
        warning = models_config_warning(args.serving_dir)
        if warning:
            print(warning, file=terminal)
        load_start = time.perf_counter()
        index = load_index(os.path.join(model_dir, INDEX_SUBDIR))
        if args.image is not None:
            return _photo_queries(args, mode, model_dir, index, load_start, terminal)
        rows, seconds = _run_query(args, mode, model_dir, index, terminal)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=terminal)
        return 2
    load_seconds = time.perf_counter() - load_start - seconds
    _print_results(mode, f'"{args.query}"', model_dir, index, rows, (seconds, load_seconds))
    return 0
