"""Collection index figures: the embedding job's throughput, ScaNN at 1 M rows, peak memory.

``python -m benchmarks.bench_index [--quick] [--rounds N] [--encoder DIR] [--data DIR]`` prints,
after the host's matmul rate and load:

(a) photos/s of ``python -m pipeline index`` (the Beam job, DirectRunner, start-up included) on
    the 1,300 shared Flickr8k JPEGs (``images/`` and ``dev_images/``), beside the encoder's own
    ``embed_image_bytes`` throughput on the same photos in one process (batches of 32, after a
    warm-up batch), and their ratio (target >= 70 %), and the job's rate without the one encoder
    load and warm-up that the one-process figure leaves out (what a long job tends to); then the
    same on the 300 of ``images/`` alone, where the job's fixed start-up weighs most. Each rate
    is the median of ``--rounds`` rounds that alternate the two (the one-process rate alone
    moves by 10 % between runs on a shared host), and each round's ratio is printed;
(b) on N synthetic unit rows of the default model's width d = 1024 (N = 1,000,000; 100,000 with
    ``--quick``): ScaNN's build time, index size, recall@10 against an exact scan over 1,000
    held-out queries (target >= 0.95), and single-query p50/p99 latency beside brute force.
    The rows are clustered like embeddings of a real collection: N/100 cluster centres drawn
    uniformly on the sphere, each row its centre plus isotropic Gaussian noise scaled so that
    its cosine to the centre is about 0.7; queries are fresh draws from the same clusters;
(c) peak memory (peak RSS) of the index job process and of a ``search --index`` process, of this
    process around the ScaNN build, and of a process that loads the N-row ScaNN index and
    answers one query.

Without ``--encoder`` the encoder is ``serving.toy_model``'s with the shipped MobileNetV2
backbone (D = 1280) and d = 1024: the backbone is what costs, the towers are one matmul.
The last line is ``recall@10: X``.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import machine  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
DIM = 1024
QUERIES = 1000
BRUTE_QUERIES = 20
INDEX_NAME = "bench"
_LOAD_AND_QUERY = """
import json, sys, time, numpy as np
from serving.collection.searcher import SearcherSettings, load_searcher
rows = np.load(sys.argv[1], mmap_mode="r")
settings = SearcherSettings(**json.loads(sys.argv[2]))
start = time.perf_counter()
searcher = load_searcher(rows, settings, sys.argv[3])
searcher.search(np.asarray(rows[:1]), 10)
print(f"{time.perf_counter() - start:.1f}")
"""


def _child(command: list[str]) -> tuple[str, float, float]:
    """Runs ``command``; its stdout, wall seconds and peak RSS in MiB.

    The peak is the child's own ``VmHWM``, polled while it runs: ``wait4``'s ``ru_maxrss`` of a
    child counts the RSS it had as a fork of this process before its ``exec``.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    peak_kib = 0
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env,
                                   text=True)
        while process.poll() is None:
            peak_kib = max(peak_kib, machine.peak_rss_kib(process.pid))
            time.sleep(0.05)
        out.seek(0)
        text = out.read()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:5]} exited {process.returncode}: {text[-2000:]}")
    return text, time.perf_counter() - start, peak_kib / 1024


def _in_process_rate(encoder_dir: str, blobs: list[bytes],
                     batch: int = 32) -> tuple[float, float]:
    """Photos/s of ``embed_image_bytes`` on ``blobs`` in batches, and the load's seconds.

    The rate is timed after the encoder is loaded and has run one warm-up batch; the seconds
    are those of that load and warm-up.
    """
    import tensorflow as tf

    from serving.savedmodel import load_saved_model
    from trainer import features

    start = time.perf_counter()
    model = load_saved_model(encoder_dir)
    embed = model.signatures[features.EMBED_IMAGE_BYTES_SIGNATURE]
    embed(image_bytes=tf.constant(blobs[:batch]))
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(blobs), batch):
        embed(image_bytes=tf.constant(blobs[i:i + batch]))
    return len(blobs) / (time.perf_counter() - start), load_s


def _job_rounds(serving: pathlib.Path, encoder_dir: str, src: str, name: str,
                rounds: int) -> dict:
    """``rounds`` rounds, each the encoder in one process then an index job, on ``src``.

    Rounds alternate the two, so that both see the same state of a noisy host, and each job
    builds a fresh index (``name``, then ``name-2``, ...), so that none reuses a row.

    Returns:
        ``{"manifest": the first job's manifest, "one_process": [photos/s], "job": [photos/s],
        "load_s": [one-process load + warm-up seconds], "job_rss": [job peak RSS MiB]}``.

    """
    from serving.collection.api import latest_index_dir

    blobs = [pathlib.Path(path).read_bytes() for path in sorted(glob.glob(src))]
    result: dict = {"one_process": [], "job": [], "load_s": [], "job_rss": []}
    for round_ in range(rounds):
        one_process, load_s = _in_process_rate(encoder_dir, blobs)
        index = name if round_ == 0 else f"{name}-{round_ + 1}"
        _, _, job_rss = _child([sys.executable, "-m", "pipeline", "index", "--collection", src,
                                "--name", index, "--serving-dir", str(serving)])
        manifest = json.loads((pathlib.Path(latest_index_dir(str(serving), index))
                               / "manifest.json").read_text())
        result.setdefault("manifest", manifest)
        result["job"].append(manifest["counts"]["indexed"] / manifest["seconds"]["embed"])
        for key, value in (("one_process", one_process), ("load_s", load_s),
                           ("job_rss", job_rss)):
            result[key].append(value)
    return result


def _job_line(label: str, rounds: dict) -> tuple[float, float, str, str]:
    """The median job rate, its % of the median one-process rate, the line, each round's %."""
    count = rounds["manifest"]["counts"]["indexed"]
    rate, one_process = float(np.median(rounds["job"])), float(np.median(rounds["one_process"]))
    load_s = float(np.median(rounds["load_s"]))
    ratio = 100 * rate / one_process
    steady = count / max(count / rate - load_s, 1e-9)
    steady_ratio = 100 * steady / one_process
    each = ", ".join(f"{100 * job / one:.0f}" for job, one in zip(
        rounds["job"], rounds["one_process"], strict=True))
    line = (f"(a) embedding job on {label}: {rate:.1f} photos/s ({count} JPEGs, "
            f"{count / rate:.1f} s with start-up; median of {len(rounds['job'])} rounds); one "
            f"process: {one_process:.1f} photos/s; job/one-process {ratio:.0f} % (target >= "
            f"70 %; by round: {each} %); without one encoder load + warm-up ({load_s:.1f} s in "
            f"one process) the job makes {steady:.1f} photos/s ({steady_ratio:.0f} %)")
    return rate, ratio, line, each


def job_figures(serving: pathlib.Path, encoder_dir: str, data: pathlib.Path,
                rounds: int) -> dict:
    """(a) and the job / search halves of (c); returns the summary figures.

    The job runs on every shared JPEG (``images/`` and ``dev_images/``, one glob), then on the
    300 of ``images/`` alone, where the job's fixed start-up (Beam, the encoder's load and
    first batch: about 2 s) weighs against 2 to 3 s of work. Each is the median of ``rounds``
    rounds (``_job_rounds``).
    """
    every = _job_rounds(serving, encoder_dir, str(data / "*images" / "*.jpg"), INDEX_NAME,
                        rounds)
    rate, ratio, line, each = _job_line(
        f"the {every['manifest']['counts']['indexed']:,} shared JPEGs", every)
    print(line, flush=True)
    small = _job_rounds(serving, encoder_dir, str(data / "images" / "*.jpg"),
                        INDEX_NAME + "-300", rounds)
    _, small_ratio, line, small_each = _job_line("the 300 JPEGs of images/ alone", small)
    print(line, flush=True)
    _, search_wall, search_rss = _child([sys.executable, "-m", "pipeline", "search",
                                         "a dog runs on the beach", "--index", INDEX_NAME,
                                         "--serving-dir", str(serving)])
    job_rss = max(every["job_rss"])
    print(f"(c) peak memory: index job {job_rss:.0f} MiB; search --index process "
          f"{search_rss:.0f} MiB ({search_wall:.1f} s, encoder load included)")
    return {"job photos/s": f"{rate:.1f}",
            "one-process photos/s": f"{np.median(every['one_process']):.1f}",
            "job / one-process %": f"{ratio:.0f}", "job / one-process % by round": each,
            "job / one-process % on images/ (300)": f"{small_ratio:.0f}",
            "job / one-process % on images/ (300) by round": small_each,
            "index job peak MiB": f"{job_rss:.0f}", "search process peak MiB": f"{search_rss:.0f}"}


def clustered_rows(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """``n`` unit rows around random ``centres`` (cosine to the centre about 0.7)."""
    sigma = np.sqrt((1 / 0.7 ** 2 - 1) / centres.shape[1])
    rows = np.empty((n, centres.shape[1]), np.float32)
    for start in range(0, n, 50_000):
        stop = min(start + 50_000, n)
        chunk = centres[rng.integers(0, len(centres), stop - start)]
        chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * np.float32(sigma)
        rows[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return rows


def _exact_top10(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    best = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(rows), 100_000):
        scores = queries @ rows[start:start + 100_000].T
        top = np.argpartition(-scores, 9, axis=1)[:, :10]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], 1)
        best = np.concatenate([best, top + start], 1)
        keep = np.argpartition(-best_scores, 9, axis=1)[:, :10]
        best_scores, best = (np.take_along_axis(best_scores, keep, 1),
                             np.take_along_axis(best, keep, 1))
    return best


def _latencies(searcher, queries: np.ndarray) -> tuple[float, float]:
    """p50/p99 milliseconds of single-query top-10 searches."""
    seconds = []
    for query in queries:
        start = time.perf_counter()
        searcher.search(query[None], 10)
        seconds.append(time.perf_counter() - start)
    return tuple(1000 * np.percentile(seconds, [50, 99]))


def _measure(rows: np.ndarray, queries: np.ndarray, work: pathlib.Path) -> dict:
    """Builds, saves and times ScaNN beside brute force over ``rows``."""
    from serving.collection.searcher import build_searcher, save_searcher, settings_for

    settings = settings_for(len(rows))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    scann = build_searcher(rows, settings)
    build_s = time.perf_counter() - start
    build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    save_searcher(scann, str(work / "scann"))
    truth = _exact_top10(rows, queries)
    found = scann.search(queries, 10)[1]
    return {"settings": settings, "build_s": build_s, "rss": (rss_before, build_rss),
            "size": sum(p.stat().st_size for p in (work / "scann").iterdir()) / 2 ** 20,
            "recall": float(np.mean([len(set(f) & set(t)) / 10
                                     for f, t in zip(found, truth, strict=True)])),
            "scann": _latencies(scann, queries),
            "brute": _latencies(build_searcher(rows, settings_for(1)), queries[:BRUTE_QUERIES])}


def scann_figures(n: int, work: pathlib.Path) -> dict:
    """(b) and the ScaNN half of (c); returns the summary figures."""
    from dataclasses import asdict

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(n // 100, 1), DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = clustered_rows(n, rng, centres)
    got = _measure(rows, clustered_rows(QUERIES, rng, centres), work)
    np.save(work / "rows.npy", rows)
    del rows  # the child below measures its own memory; this process need not hold 4 GiB more
    (scann_p50, scann_p99), (brute_p50, brute_p99) = got["scann"], got["brute"]
    print(f"(b) {n:,} rows x {DIM} (synthetic, {len(centres):,} clusters): {got['settings']}")
    print(f"(b) build {got['build_s']:.1f} s; index size {got['size']:.0f} MiB on disk "
          f"({n * DIM * 4 / 2 ** 20:.0f} MiB of float32 rows); recall@10 vs exact "
          f"{got['recall']:.4f} (target >= 0.95)")
    print(f"(b) single query, {len(os.sched_getaffinity(0))} cores: ScaNN p50 {scann_p50:.2f} ms "
          f"p99 {scann_p99:.2f} ms (target p50 <= 1 ms); brute force p50 {brute_p50:.1f} ms "
          f"p99 {brute_p99:.1f} ms ({BRUTE_QUERIES} queries)")
    out, _, load_rss = _child([sys.executable, "-c", _LOAD_AND_QUERY, str(work / "rows.npy"),
                               json.dumps(asdict(got["settings"])), str(work / "scann")])
    print(f"(c) peak memory: this process {got['rss'][0]:.0f} MiB with the rows, "
          f"{got['rss'][1]:.0f} MiB after the ScaNN build; a process loading the {n:,}-row "
          f"index and answering a query {load_rss:.0f} MiB ({out.strip()} s)")
    return {"rows": f"{n}", "scann build s": f"{got['build_s']:.1f}",
            "scann index MiB": f"{got['size']:.0f}", "scann p50 ms": f"{scann_p50:.2f}",
            "scann p99 ms": f"{scann_p99:.2f}", "brute force p50 ms": f"{brute_p50:.1f}",
            "brute force p99 ms": f"{brute_p99:.1f}", "scann load+query peak MiB":
            f"{load_rss:.0f}", "recall@10": f"{got['recall']:.4f}"}


def main() -> None:
    """Prints figures (a), (b) and (c) (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of (a), one-process and job alternating (default 3; "
                             "1 with --quick)")
    parser.add_argument("--encoder", help="a pushed encoder with embed_image_bytes")
    parser.add_argument("--data", default=str(DATA), help="Flickr8k folder (images/, dev_images/)")
    args = parser.parse_args()
    print(f"machine: {json.dumps(machine.describe())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        serving = tmp / "serving"
        encoder = serving / "xmodal" / "1"
        if args.encoder:
            shutil.copytree(args.encoder, encoder)
        else:
            from serving.toy_model import write_toy_bytes_encoder
            from trainer.model.image_backbone import DEFAULT_TFLITE_PATH

            write_toy_bytes_encoder(encoder, DEFAULT_TFLITE_PATH, embedding_dim=DIM)
        rounds = args.rounds or (1 if args.quick else 3)
        figures = job_figures(serving, str(encoder), pathlib.Path(args.data), rounds)
        figures.update(scann_figures(100_000 if args.quick else 1_000_000, tmp))
    print("== summary: Collection index: the embedding job, ScaNN at 1,000,000 rows, peak memory")
    for label, value in figures.items():  # recall@10 last
        print(f"{label}: {value}")


if __name__ == "__main__":
    main()
