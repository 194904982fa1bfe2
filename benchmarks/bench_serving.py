"""In-process serving speed of the pushed encoder and of gallery search.

Figures, measured side by side in one run:

* ``embed_text`` latency p50/p99 for 1 caption, and throughput (captions/s) at batch 256;
* ``embed_image`` throughput at batch 256;
* search latency p50/p99 (one caption, top-5, text embedding included) through the exported
  search SavedModel over the 1,000-image Flickr8k dev gallery and over a synthetic
  100,000-item gallery, and the 100k/1k ratio; chunked vs one-matmul top-k on 100k.

Run: ``python -m benchmarks.bench_serving [--quick] [--model-dir DIR] [--data DIR]``. Without
``--model-dir`` the encoder is ``serving.toy_model`` at realistic sizes (D=1280, d=256);
pass a pushed ``<serving_dir>/<model>/<version>`` to measure the trained model.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import argparse  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import harness  # noqa: E402
from serving.client import EmbeddingClient, LocalBackend  # noqa: E402
from serving.contract import check_encoder_contract  # noqa: E402
from serving.gallery import GalleryIndex, build_index  # noqa: E402
from serving.gallery_sources import GalleryRecords, read_features_file  # noqa: E402
from serving.savedmodel import load_saved_model  # noqa: E402
from serving.search import chunked_top_k  # noqa: E402
from serving.search_model import SEARCH_SIGNATURE, write_search_model  # noqa: E402
from serving.toy_model import write_toy_encoder  # noqa: E402
from trainer import features  # noqa: E402

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
QUERY = "a dog runs on the beach"
BATCH = 256
SYNTHETIC_ITEMS = 100_000


def percentiles_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> tuple[float, float]:
    """p50 and p99 of ``fn``'s wall time in milliseconds."""
    times = harness.wall_times(fn, repeats, warmup)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def dev_records(data: pathlib.Path, feature_dim: int) -> GalleryRecords:
    """The Flickr8k dev gallery (1,000 images), or 1,000 synthetic images when absent."""
    if (data / "features" / "mobilenet_v2.npy").is_file():
        print(f"gallery: Flickr8k dev images from {data}")
        return read_features_file(
            str(data / "features" / "mobilenet_v2.npy"),
            str(data / "features" / "mobilenet_v2.names.txt"), str(data / "Flickr8k.token.txt"),
            str(data / "Flickr_8k.devImages.txt"))
    print(f"gallery: 1,000 synthetic images ({data} not found)")
    rng = np.random.default_rng(0)
    ids = [f"synthetic{i:04d}.jpg" for i in range(1000)]
    return GalleryRecords(ids, [""] * 1000, rng.uniform(0, 6, (1000, feature_dim)).astype(
        np.float32), [], [], [], source="synthetic")


def synthetic_index(n: int, dim: int) -> GalleryIndex:
    """``n`` random unit embeddings with ids, for scaling measurements."""
    rows = np.random.default_rng(1).normal(size=(n, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    ids = np.asarray([f"item{i:06d}" for i in range(n)])
    empty = np.asarray([], dtype=str)
    return GalleryIndex("synthetic", 0, ids, ids, rows, empty, empty, empty,
                        np.zeros((0, dim), np.float32), source="synthetic")


def bench_encoder(model_dir: str, repeats: int) -> None:
    """Prints embed_text latency and embed_text / embed_image throughput at batch 256."""
    model = load_saved_model(model_dir)
    embed_text = model.signatures[features.EMBED_TEXT_SIGNATURE]
    embed_image = model.signatures[features.EMBED_IMAGE_SIGNATURE]
    one = tf.constant([QUERY])
    p50, p99 = percentiles_ms(lambda: embed_text(caption=one), repeats)
    print(f"embed_text 1 caption: p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    batch = tf.constant([f"{QUERY} number {i}" for i in range(BATCH)])
    t50, _ = percentiles_ms(lambda: embed_text(caption=batch), max(repeats // 10, 5))
    print(f"embed_text batch {BATCH}: {BATCH / (t50 / 1e3):,.0f} captions/s "
          f"({t50:.1f} ms per batch; {t50 / BATCH / p50:.3f}x the per-caption time of batch 1)")
    dim = check_encoder_contract(model_dir).feature_dim
    images = tf.constant(np.random.default_rng(2).uniform(0, 6, (BATCH, dim)).astype(np.float32))
    i50, _ = percentiles_ms(lambda: embed_image(image_features=images), max(repeats // 10, 5))
    print(f"embed_image batch {BATCH}: {BATCH / (i50 / 1e3):,.0f} images/s ({i50:.1f} ms)")


def bench_search_model(model_dir: str, index: GalleryIndex, label: str, tmp: str,
                       repeats: int) -> float:
    """Exports a search SavedModel over ``index``; prints and returns its p50 (ms)."""
    export = os.path.join(tmp, label)
    start = time.perf_counter()
    write_search_model(model_dir, index, export, k=5)
    built = time.perf_counter() - start
    start = time.perf_counter()
    search = load_saved_model(export).signatures[SEARCH_SIGNATURE]
    loaded = time.perf_counter() - start
    query = tf.constant(QUERY)
    p50, p99 = percentiles_ms(lambda: search(caption=query), repeats)
    print(f"search {label} ({len(index.image_ids):,} items, top-5): p50 {p50:.2f} ms  "
          f"p99 {p99:.2f} ms  (export {built:.1f} s, load {loaded:.1f} s)")
    return p50


def bench_top_k(index: GalleryIndex, repeats: int) -> None:
    """Chunked top-k vs one full matmul + top-k on the same gallery (1 query)."""
    gallery = tf.constant(index.image_embeddings)
    query = tf.constant(index.image_embeddings[:1])
    chunked = tf.function(lambda q: chunked_top_k(q, gallery, 5))
    full = tf.function(lambda q: tf.math.top_k(tf.matmul(q, gallery, transpose_b=True), 5))
    c50, _ = percentiles_ms(lambda: chunked(query), repeats)
    f50, _ = percentiles_ms(lambda: full(query), repeats)
    print(f"top-5 over {len(index.image_ids):,} (no encoder): chunked p50 {c50:.2f} ms, "
          f"one matmul p50 {f50:.2f} ms, ratio {c50 / f50:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 1 minute)")
    parser.add_argument("--model-dir", help="a pushed encoder SavedModel (default: toy encoder)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Flickr8k folder")
    args = parser.parse_args(argv)
    repeats = 30 if args.quick else 300
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or str(write_toy_encoder(
            os.path.join(tmp, "toy"), feature_dim=1280, embedding_dim=256))
        print(f"encoder: {model_dir}{'' if args.model_dir else ' (toy, D=1280, d=256)'}")
        bench_encoder(model_dir, repeats)
        spec = check_encoder_contract(model_dir)
        client = EmbeddingClient(LocalBackend(model_dir), feature_dim=spec.feature_dim)
        dev = build_index(dev_records(pathlib.Path(args.data), spec.feature_dim), client,
                          "bench", 0)
        small = bench_search_model(model_dir, dev, "dev-gallery", tmp, repeats)
        big_index = synthetic_index(SYNTHETIC_ITEMS, spec.embedding_dim)
        big = bench_search_model(model_dir, big_index, "synthetic-100k", tmp, repeats)
        print(f"ratio search 100k / 1k: {big / small:.2f}")
        bench_top_k(big_index, repeats)


if __name__ == "__main__":
    main()
