"""``python -m pipeline serve``: the search page and its JSON API (docs/search_page.md).

Loads the latest pushed version of ``--model-name`` (and of ``--compare``), starts uvicorn on
``--host``:``--port`` (127.0.0.1:8080 unless told otherwise) and swaps in newer versions as the
Pusher publishes them. Nothing listens until the models are loaded; a missing or unloadable
model is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import pathlib
import sys
from collections.abc import Sequence

import tensorflow as tf
import uvicorn

from serving.retry import ServingError
from serving.web.api import Service
from serving.web.app import create_app
from serving.web.collection import CollectionSource
from serving.web.holder import DEFAULT_POLL_S, ModelHolder, ModelSource
from serving.web.model import GallerySource
from serving.web.photos import PhotoStore
from serving.web.queries import Limits

DEFAULT_SERVING_DIR = "runs/serving"
DEFAULT_MODEL_NAME = "xmodal"
SHARED_FLICKR8K = ("..", "shared", "data", "flickr8k")
# The eval split's photos first (the gallery), then the train photos of the same data.
PHOTO_SUBDIRS = ("dev_images", "images")


def default_photo_dirs() -> list[str]:
    """The photo folders of the Flickr8k copy beside the checkout (as the pipeline finds it)."""
    for root in (pathlib.Path.cwd().joinpath(*SHARED_FLICKR8K),
                 pathlib.Path(__file__).resolve().parents[2].joinpath(*SHARED_FLICKR8K)):
        if (root / "Flickr8k.token.txt").is_file():
            return [str(root.resolve() / sub) for sub in PHOTO_SUBDIRS if (root / sub).is_dir()]
    return []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline serve", allow_abbrev=False,
        description="The search page and JSON API over the latest pushed model.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    parser.add_argument("--serving-dir", default=DEFAULT_SERVING_DIR,
                        help="the Pusher's serving directory (default: %(default)s)")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME,
                        help="the served encoder (default: %(default)s)")
    parser.add_argument("--compare", metavar="MODEL_NAME",
                        help="a second pushed model shown beside the first in the compare view")
    parser.add_argument("--index", metavar="NAME",
                        help="search collection index NAME instead of the eval-split gallery")
    parser.add_argument("--tf-serving", metavar="URL",
                        help="embed queries with TF Serving's REST API at URL "
                             "(e.g. http://localhost:8501) instead of in-process")
    parser.add_argument("--photos", metavar="DIR", action="append",
                        help="a folder of the gallery's photos (repeatable; default: dev_images/ "
                             "and images/ of ../shared/data/flickr8k when present)")
    parser.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL_S,
                        help="how often to look for a newer pushed version (default: "
                             "%(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def _check(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be 1..65535, got {args.port}")
    if args.poll_seconds <= 0:
        raise ValueError(f"--poll-seconds must be > 0, got {args.poll_seconds}")
    if args.tf_serving is not None and not args.tf_serving.startswith(("http://", "https://")):
        raise ValueError(f"--tf-serving must be an http:// or https:// URL, got "
                         f"{args.tf_serving!r}")
    try:
        ipaddress.ip_address(_host_ip(args.host))
    except ValueError as err:
        raise ValueError(f"--host must be an IP address (or localhost): {err}") from err
    if args.index is not None and args.compare is not None:
        raise ValueError("--compare works on the eval-split gallery, whose captions both models "
                         "share: leave out --index")


def _sources(args: argparse.Namespace) -> list[ModelSource]:
    if args.index is not None:
        return [CollectionSource(args.serving_dir, args.index, args.model_name, args.tf_serving,
                                 tuple(args.photos or ()))]
    photos = PhotoStore(args.photos if args.photos is not None else default_photo_dirs())
    for folder in photos.missing:
        print(f"warning: photo folder {folder} does not exist; its photos are shown by name",
              file=sys.stderr)
    return [GallerySource(args.serving_dir, name, photos, args.tf_serving)
            for name in [args.model_name] + ([args.compare] if args.compare else [])]


def build_service(args: argparse.Namespace) -> Service:
    """Loads the models of a command line (raises on a missing or unloadable one)."""
    holders = []
    for source in _sources(args):
        holder = ModelHolder(source, args.poll_seconds)
        holder.load_latest()
        holders.append(holder)
    return Service(holders[0], holders[1] if len(holders) > 1 else None, Limits())


def _announce(args: argparse.Namespace, service: Service) -> None:
    for holder in service.holders():
        model = holder.current
        print(f"{model.name} version {model.version}: {model.source}, "
              f"{len(model.index.image_ids)} images, {len(model.index.caption_ids)} captions; "
              f"photos from {', '.join(model.photos.folders) or 'nowhere (shown by name)'}")
    if not ipaddress.ip_address(_host_ip(args.host)).is_loopback:
        print(f"warning: listening on {args.host}: other machines can reach this service",
              file=sys.stderr)
    print(f"serving http://{args.host}:{args.port}/", flush=True)


def _host_ip(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host.strip("[]")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2: bad arguments or no model)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        _check(args)
        service = build_service(args)
    except (FileNotFoundError, ValueError, ServingError, tf.errors.OpError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _announce(args, service)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="warning",
                access_log=args.access_log)
    return 0
