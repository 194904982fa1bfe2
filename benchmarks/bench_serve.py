"""Load benchmark of the search service (``python -m pipeline serve``) on 127.0.0.1.

The service runs in its own process, started with the documented command. ``--clients`` threads
(16) send queries for ``--seconds`` (30), each over its own keep-alive connection, alternating
text queries (``GET /api/search``, dev captions) and photo queries (``POST /api/search/image``,
dev JPEGs); each client waits for its answer before sending the next (closed loop). A third of
the way in, a new model version is pushed as the Pusher pushes one (search model, then encoder);
the run checks that the service switches to it and that no request fails, before or after.

Printed: requests/s, p50/p99 latency per kind, errors, when the new version answered first, and
the service's resident memory (RSS) after warm-up, its peak during the run and after it, with
the host's matmul rate (``benchmarks.machine``): clients and service share the host's cores.

The model is the toy encoder (``serving.toy_model``) with the real MobileNetV2 backbone
(``../shared/models``), d = 256, over the 1,000-image Flickr8k dev gallery; ``--serving-dir S
--model-name M`` copies the latest pushed version of a trained model instead.

    python -m benchmarks.bench_serve [--quick] [--serving-dir S --model-name M]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

from benchmarks import serve_load  # noqa: E402
from serving.gallery import load_index, save_index  # noqa: E402
from serving.publish import list_versions, next_version, publish_directory  # noqa: E402
from serving.search_model import INDEX_SUBDIR, search_model_name  # noqa: E402

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
DEFAULT_BACKBONE = (pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"
                    / "mobilenet_v2_1.0_224_quant.tflite")
TOY_MODEL = "toy_serve"
EMBEDDING_DIM = 256


def push_again(serving_dir: pathlib.Path, model_name: str) -> int:
    """Publishes the latest version of ``model_name`` again under a new version; returns it.

    As the Pusher does: the search model first (its gallery index relabelled with the new
    version), then the encoder, each in one atomic rename (``serving.publish``).
    """
    search_base = serving_dir / search_model_name(model_name)
    encoder_base = serving_dir / model_name
    latest = list_versions(str(search_base))[-1]
    version = next_version(list_versions(str(search_base)) + list_versions(str(encoder_base)))
    with tempfile.TemporaryDirectory() as tmp:
        staged = pathlib.Path(tmp) / "search"
        shutil.copytree(search_base / str(latest), staged)
        index_dir = str(staged / INDEX_SUBDIR)
        save_index(dataclasses.replace(load_index(index_dir), model_version=version), index_dir)
        publish_directory(str(staged), str(search_base), version)
    publish_directory(str(encoder_base / str(latest)), str(encoder_base), version)
    return version


def write_toy_model(serving_dir: pathlib.Path, data: pathlib.Path, backbone: pathlib.Path) -> str:
    """Pushes the toy encoder (real backbone) and its dev-gallery search model as version 1."""
    from serving.client import EmbeddingClient, LocalBackend
    from serving.gallery import build_index
    from serving.gallery_sources import read_features_file
    from serving.search_model import write_search_model
    from serving.toy_model import write_toy_bytes_encoder

    encoder_dir = serving_dir / TOY_MODEL / "1"
    write_toy_bytes_encoder(encoder_dir, str(backbone), EMBEDDING_DIM)
    features = data / "features"
    records = read_features_file(str(features / "mobilenet_v2.npy"),
                                 str(features / "mobilenet_v2.names.txt"),
                                 str(data / "Flickr8k.token.txt"),
                                 str(data / "Flickr_8k.devImages.txt"))
    index = build_index(records, EmbeddingClient(LocalBackend(str(encoder_dir))), TOY_MODEL, 1)
    write_search_model(str(encoder_dir), index,
                       str(serving_dir / search_model_name(TOY_MODEL) / "1"))
    return TOY_MODEL


def copy_latest(source: pathlib.Path, model_name: str, serving_dir: pathlib.Path) -> str:
    """Copies the latest pushed version of ``model_name`` (encoder and search model)."""
    version = str(list_versions(str(source / search_model_name(model_name)))[-1])
    for name in (model_name, search_model_name(model_name)):
        shutil.copytree(source / name / version, serving_dir / name / version)
    return model_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 clients for 10 s")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--serving-dir", help="copy the latest version of a pushed model")
    parser.add_argument("--model-name", default="xmodal")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Flickr8k folder")
    args = parser.parse_args()
    clients, seconds = (4, 10.0) if args.quick else (args.clients, args.seconds)
    data = pathlib.Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        serving_dir = pathlib.Path(tmp) / "serving"
        if args.serving_dir:
            model = copy_latest(pathlib.Path(args.serving_dir), args.model_name, serving_dir)
        else:
            model = write_toy_model(serving_dir, data, DEFAULT_BACKBONE)
        load = serve_load.LoadSpec(clients=clients, seconds=seconds, push_at=seconds / 3)
        report = serve_load.run(serving_dir, model, data, load,
                                lambda: push_again(serving_dir, model))
    if not serve_load.print_summary(report, load, model):
        raise SystemExit("bench_serve: a request failed or the new version never answered")


if __name__ == "__main__":
    main()
