"""``python -m pipeline index`` and ``python -m pipeline search --index``: the command lines.

``index`` embeds a collection with the pushed encoder (a Beam job; DirectRunner unless
``--beam-args`` names another runner) and publishes its index under
``<serving_dir>/collections/<name>/<version>/``; it prints one summary line and one line per
skipped file. ``search --index NAME`` answers from that index: rank, score, photo path and
caption. Bad input is one ``error:`` line and exit status 2, with nothing published.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from serving.layout import DEFAULT_BEAM_ARGS

if TYPE_CHECKING:
    from serving.collection.build import IndexRequest, IndexResult

DEFAULT_SERVING_DIR = "runs/serving"
DEFAULT_MODEL_NAME = "xmodal"
DEFAULT_NAME = "collection"
EX_USAGE = 2
# Skipped files named on the terminal (all of them are in the manifest).
SHOWN_SKIPS = 20
INDEX_MODES = ("text2image", "text2text", "image2image")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline index", allow_abbrev=False,
        description="Embed a photo collection with the pushed encoder and publish its index.")
    parser.add_argument("--collection", required=True, metavar="SRC",
                        help="folder or glob of JPEG/PNG photos (recursive; local or gs://), or "
                        "an image features .npy with its .names.txt")
    parser.add_argument("--captions", metavar="FILE",
                        help="captions of the photos, Flickr format (IMAGE.jpg#N<TAB>caption)")
    parser.add_argument("--name", default=DEFAULT_NAME,
                        help="index name, a plain name (default: %(default)s)")
    parser.add_argument("--serving-dir", default=DEFAULT_SERVING_DIR,
                        help="the Pusher's serving directory (default: %(default)s)")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME,
                        help="the served encoder's name (default: %(default)s)")
    parser.add_argument("--beam-args", default="",
                        help="Beam options as one string, e.g. '--runner=DataflowRunner "
                        "--project=P --region=R --temp_location=gs://B/tmp'")
    parser.add_argument("--work-dir",
                        help="where the job writes its shards (default: a temporary folder "
                        "next to the index; a gs:// folder for Dataflow)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="photos per inference call (default: %(default)s)")
    return parser


def request_of(argv: Sequence[str]) -> IndexRequest:
    """The ``IndexRequest`` of an ``index`` command line (SystemExit on a usage error)."""
    from serving.collection import build  # Beam: not for ``search --index``

    args = _parser().parse_args(argv)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    beam_args = (*DEFAULT_BEAM_ARGS, *shlex.split(args.beam_args))
    return build.IndexRequest(args.collection, args.name, args.serving_dir, args.model_name,
                              args.captions, beam_args, args.work_dir, args.batch_size)


def summary_line(result: IndexResult) -> str:
    """One line: what the index holds now, and where."""
    manifest = result.manifest
    counts = manifest.counts
    searcher = manifest.searchers["photos"]["kind"]
    state = "published" if result.published else "unchanged, kept"
    return (f"index {manifest.name!r} version {manifest.version} ({state}): "
            f"{counts['indexed']} photos of {counts['listed']} listed (embedded "
            f"{counts['embedded']}, reused {counts['reused']}, skipped {counts['skipped']}, "
            f"deleted {counts['deleted']}), {counts['captions']} captions, {searcher}; "
            f"{manifest.model_name} version {manifest.model_version}; {result.directory}")


def index_main(argv: Sequence[str], terminal: TextIO | None = None) -> int:
    """``python -m pipeline index``; returns the exit status (0, or 2 on bad input)."""
    from serving.collection import build

    terminal = terminal or sys.stderr
    try:
        result = build.build_index(request_of(argv))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=terminal)
        return EX_USAGE
    print(summary_line(result))
    for entry in result.manifest.skipped[:SHOWN_SKIPS]:
        print(f"skipped: {entry['file']} ({entry['reason']}): {entry['detail']}",
              file=terminal)
    hidden = len(result.manifest.skipped) - SHOWN_SKIPS
    if hidden > 0:
        print(f"skipped: {hidden} more, listed in {result.directory}/manifest.json",
              file=terminal)
    return 0


def search_index(args: argparse.Namespace, mode: str, terminal: TextIO) -> int:
    """``search --index NAME``: a caption → photos (``text2text``: captions), or ``--image``.

    Args:
        args: ``search``'s arguments: ``index``, ``query``, ``image``, ``k``, ``serving_dir``,
            ``model_name`` and ``version`` (the encoder version; default the latest pushed).
        mode: the resolved search mode.
        terminal: where error lines go.

    Returns:
        The exit status: 0, or 2 (bad input, no such index, an index of another model version:
        its line says how to rebuild it; with ``--image``, no photo could be searched).

    """
    from serving.collection.api import open_index

    start = time.perf_counter()
    try:
        if mode not in INDEX_MODES or (mode == "image2image" and args.image is None):
            raise ValueError(f"--index searches with a caption (--mode text2image or text2text) "
                             f"or with --image PHOTO, not --mode {mode}")
        index = open_index(args.serving_dir, args.index, args.model_name, args.version)
        print(f"index {index.name!r} version {index.version}: {index.num_photos} photos, "
              f"{index.model_name} version {index.model_version} "
              f"({time.perf_counter() - start:.1f} s to open)")
        if args.image is None:
            search = (index.search_text_to_text if mode == "text2text"
                      else index.search_text)
            _print_hits(f'"{args.query}"', search(args.query, args.k))
            return 0
        return _photo_queries(index, args.image, args.k, terminal)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=terminal)
        return EX_USAGE


def _photo_queries(index, paths: Sequence[str], k: int, terminal: TextIO) -> int:
    from serving.photo_file import read_photo_file

    searched = 0
    for path in paths:
        try:
            hits = index.search_image(read_photo_file(path), k, name=path)
        except ValueError as err:
            print(f"error: {err}", file=terminal)
            continue
        searched += 1
        _print_hits(f"image {path}", hits)
    return 0 if searched else EX_USAGE


def _print_hits(query: str, hits: list) -> None:
    print(f"query: {query}")
    for hit in hits:
        caption = f"  {hit.caption}" if hit.caption else ""
        print(f"{hit.rank:2d}. {hit.score:+.4f}  {hit.path}{caption}")
