"""Image backbone figures on the 300 Flickr8k JPEGs: parity, skew, throughput, latency.

``python -m benchmarks.bench_image_backbone --encoder <pushed encoder dir>`` prints
(1) min/mean cosine of each image's features to its own row of ``mobilenet_v2.npy`` and whether
that row is the nearest of all 7,000, for the TF backbone and the TFLite interpreter;
(2) R@1/5/10 both ways on the images and their captions through ``embed_image`` on the npy rows
and through ``embed_image_bytes`` on the JPEGs; (3) images/s of both backbones and the p50/p99
latency of ``embed_image_bytes`` on one JPEG, in-process; (4) where one JPEG's time goes: the
in-graph decode + resize, the network on decoded pixels, and the backbone called as a loaded
SavedModel signature (bytes in), wall p50/p99 and process CPU ms (less sensitive to a shared
host's load than wall time). ``--latency-only`` prints (4) (and (3)'s latency with
``--encoder``) only. Every run starts with the host's matmul rate and load.
"""

import argparse
import pathlib
import tempfile
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from benchmarks import machine
from trainer import features
from trainer.model.image_backbone import DEFAULT_TFLITE_PATH, ImageBackbone

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _tflite_rows(paths: list[pathlib.Path]) -> tuple[np.ndarray, float]:
    from components.image_featurizer.config import MOBILENET_V2_TFLITE
    from components.image_featurizer.decoding import decode_image
    from components.image_featurizer.handlers import make_model_handler

    model = make_model_handler(MOBILENET_V2_TFLITE).load_model()
    start = time.perf_counter()
    rows = [model(decode_image(p.read_bytes(), p.name, (224, 224)).pixels[None])[0]
            for p in paths]
    return np.asarray(rows), len(paths) / (time.perf_counter() - start)


def _tf_rows(blobs: list[bytes], batch: int) -> tuple[np.ndarray, float]:
    backbone = ImageBackbone(DEFAULT_TFLITE_PATH)
    run = tf.function(backbone.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    run(tf.constant(blobs[:batch]))  # tracing
    start = time.perf_counter()
    rows = [run(tf.constant(blobs[i:i + batch])).numpy() for i in range(0, len(blobs), batch)]
    return np.concatenate(rows), len(blobs) / (time.perf_counter() - start)


def _parity(name: str, rows: np.ndarray, own: list[int], ref: np.ndarray) -> None:
    cosine = (_unit(rows) * _unit(ref[own])).sum(axis=1)
    nearest = (_unit(rows) @ _unit(ref).T).argmax(axis=1)
    print(f"{name}: cosine to own row min {cosine.min():.4f} mean {cosine.mean():.4f}; own row "
          f"nearest for {(nearest == np.asarray(own)).sum()}/{len(own)}")


def _recalls(images: np.ndarray, texts: np.ndarray, owner: np.ndarray) -> dict[str, float]:
    scores = images @ texts.T  # [I, T]
    out = {}
    ranks_i2t = [min(np.flatnonzero(np.argsort(-row) == t)[0] for t in np.flatnonzero(owner == i))
                 for i, row in enumerate(scores)]
    ranks_t2i = [np.flatnonzero(np.argsort(-scores[:, t]) == owner[t])[0]
                 for t in range(len(owner))]
    for k in (1, 5, 10):
        out[f"i2t_R@{k}"] = 100 * np.mean(np.asarray(ranks_i2t) < k)
        out[f"t2i_R@{k}"] = 100 * np.mean(np.asarray(ranks_t2i) < k)
    out["rsum"] = sum(out.values())
    return out


def _skew(encoder_dir: str, names: list[str], npy_rows: np.ndarray, blobs: list[bytes]) -> None:
    signatures = tf.saved_model.load(encoder_dir).signatures
    captions, owner = [], []
    for line in (DATA / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines():
        image, caption = line.split("\t", 1)
        if image.split("#")[0] in names:
            captions.append(caption)
            owner.append(names.index(image.split("#")[0]))
    texts = signatures[features.EMBED_TEXT_SIGNATURE](caption=tf.constant(captions))[
        features.TEXT_EMBEDDING_OUTPUT].numpy()
    via_rows = signatures[features.EMBED_IMAGE_SIGNATURE](
        image_features=tf.constant(npy_rows))[features.IMAGE_EMBEDDING_OUTPUT].numpy()
    via_bytes = np.concatenate([signatures[features.EMBED_IMAGE_BYTES_SIGNATURE](
        image_bytes=tf.constant(blobs[i:i + 50]))[features.IMAGE_EMBEDDING_OUTPUT].numpy()
        for i in range(0, len(blobs), 50)])
    for label, images in (("(a) embed_image on npy rows", via_rows),
                          ("(b) embed_image_bytes on JPEGs", via_bytes)):
        metrics = _recalls(images, texts, np.asarray(owner))
        print(label, f"{len(captions)} captions:",
              " ".join(f"{k} {v:.1f}" for k, v in metrics.items()))
    _latency("embed_image_bytes one JPEG", lambda: signatures[
        features.EMBED_IMAGE_BYTES_SIGNATURE](image_bytes=tf.constant(blobs[:1])))


def _latency(label: str, call: Callable[[], object], runs: int = 60, warmup: int = 10) -> None:
    """Prints wall p50/p99 and process-CPU p50 (ms) of ``call`` after ``warmup`` calls."""
    wall, cpu = [], []
    for _ in range(warmup):
        call()
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
    print(f"{label}: wall p50 {np.percentile(wall, 50):.1f} ms p99 {np.percentile(wall, 99):.1f} "
          f"ms; CPU p50 {np.percentile(cpu, 50):.1f} ms")


def _stages(blob: bytes) -> None:
    """Latency of one JPEG by stage, and of the backbone as a loaded SavedModel signature."""
    module = tf.Module()
    module.backbone = ImageBackbone(DEFAULT_TFLITE_PATH)
    module.embed = tf.function(module.backbone.__call__, input_signature=[
        tf.TensorSpec([None], tf.string, name=features.IMAGE_BYTES_INPUT)])
    decode = tf.function(module.backbone.decode,
                         input_signature=[tf.TensorSpec([None], tf.string)])
    network = tf.function(module.backbone.features,
                          input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32)])
    one = tf.constant([blob])
    pixels = decode(one)
    with tempfile.TemporaryDirectory() as export:
        tf.saved_model.save(module, export, signatures={"bytes": module.embed})
        loaded = tf.saved_model.load(export).signatures["bytes"]
        _latency("decode + resize", lambda: decode(one))
        _latency("network on decoded pixels", lambda: network(pixels))
        _latency("backbone signature, bytes in (loaded)", lambda: loaded(image_bytes=one))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", help="a pushed encoder SavedModel (for skew and latency)")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the latency figures (no parity, throughput or skew)")
    args = parser.parse_args()
    print("host:", machine.describe())
    first = sorted((DATA / "images").glob("*.jpg"))[0].read_bytes()
    _stages(first)
    if args.latency_only:
        if args.encoder:
            signatures = tf.saved_model.load(args.encoder).signatures
            _latency("embed_image_bytes one JPEG", lambda: signatures[
                features.EMBED_IMAGE_BYTES_SIGNATURE](image_bytes=tf.constant([first])))
        return
    ref_names = (DATA / "features" / "mobilenet_v2.names.txt").read_text().split()
    ref = np.load(DATA / "features" / "mobilenet_v2.npy").astype(np.float32)
    paths = sorted((DATA / "images").glob("*.jpg"))
    names = [p.name for p in paths]
    own = [ref_names.index(n) for n in names]
    blobs = [p.read_bytes() for p in paths]
    tflite_rows, tflite_rate = _tflite_rows(paths)
    tf_rows, rate_64 = _tf_rows(blobs, 64)
    _, rate_1 = _tf_rows(blobs[:60], 1)
    _parity("TF backbone", tf_rows, own, ref)
    _parity("TFLite featurizer", tflite_rows, own, ref)
    print(f"images/s: TF batch 1 {rate_1:.1f}, TF batch 64 {rate_64:.1f}, "
          f"TFLite {tflite_rate:.1f} (decode included)")
    if args.encoder:
        _skew(args.encoder, names, ref[own], blobs)


if __name__ == "__main__":
    main()
