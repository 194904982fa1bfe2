"""Evaluation cost, measured side by side in one run.

* Corpus metrics (``retrieval_metrics`` + the four ROUGE-L nDCGs) at 1k images × 5k captions and
  5k × 25k (COCO 5k), each in a fresh process so its peak RSS is its own; chunked scoring against
  one unchunked pass (chunk = the whole query set) shows what chunking saves. Target: peak < 2 GiB
  at 5k × 25k.
* ROUGE-L relevance throughput (query captions/second against the whole eval gallery): the plain
  Python reference (``rouge_l``), the bit-parallel ``RelevanceScorer`` in-process, and the Beam
  steps of the Relevance component on the DirectRunner with 1 and 2 worker processes.

Captions are the Flickr8k dev captions when ``../shared/data/flickr8k`` exists, else generated.
Run: ``python -m benchmarks.bench_eval [--quick]``.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import pathlib  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from serving import rouge
from trainer import metrics  # noqa: E402

FLICKR8K = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
GIB = 2.0**30
DIM = 512
MIN_NET_SHARE = 0.1  # the work must be >= 10 % of a Beam run for a net rate


def _metrics_case(n_images: int, per_image: int, chunk: int) -> tuple[float, float]:
    """Runs in a child process: seconds of metrics + nDCG, and the process's peak RSS (GiB)."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(n_images, DIM)).astype(np.float32)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    ids = np.arange(n_images)
    text_ids = np.repeat(ids, per_image)
    text = image[text_ids] + rng.normal(scale=0.05, size=(len(text_ids), DIM)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    relevance = rng.random((len(text_ids), n_images), dtype=np.float32)
    started = time.perf_counter()
    metrics.retrieval_metrics(image, ids, text, text_ids, chunk=chunk)
    metrics.semantic_ndcg(image, ids, text, text_ids, relevance, metrics.NdcgOptions(chunk=chunk))
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def _in_child(function, *args):
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


def bench_metrics(quick: bool) -> None:
    """Chunked scoring at both sizes, and one unchunked pass beside it at 1k × 5k.

    Not at 5k × 25k: the unchunked t2t pass alone holds 25k × 25k scores and relevance (> 10 GiB).
    """
    print("corpus metrics (R@K, ranks, 4 nDCG@25), d = 512, random relevance:")
    chunked = _in_child(_metrics_case, 1000, 5, metrics.DEFAULT_CHUNK)
    whole = _in_child(_metrics_case, 1000, 5, 5000)
    print(f"  1000 images × 5000 captions: chunked {chunked[0]:.1f} s, peak {chunked[1]:.2f} GiB"
          f" | unchunked {whole[0]:.1f} s, peak {whole[1]:.2f} GiB | memory ratio "
          f"{whole[1] / chunked[1]:.1f}x, time ratio {whole[0] / chunked[0]:.2f}x")
    if quick:
        return
    seconds, peak = _in_child(_metrics_case, 5000, 5, metrics.DEFAULT_CHUNK)
    verdict = "met" if peak < 2.0 else "MISSED"
    print(f"  5000 images × 25000 captions: chunked {seconds:.1f} s, peak {peak:.2f} GiB "
          f"(target < 2 GiB: {verdict}); {seconds / chunked[0]:.1f}x the 1k × 5k time for 25x "
          "the score pairs")


def _captions(n: int) -> tuple[list[str], list[str]]:
    """(image ids, captions) of up to n Flickr8k dev captions, else generated ones."""
    token_file = FLICKR8K / "Flickr8k.token.txt"
    if token_file.is_file():
        dev = set((FLICKR8K / "Flickr_8k.devImages.txt").read_text().split())
        rows = [line.split("\t", 1) for line in token_file.read_text().splitlines() if "\t" in line]
        rows = [(cid.split("#")[0], text) for cid, text in rows if cid.split("#")[0] in dev][:n]
        print(f"  captions: {len(rows)} Flickr8k dev captions")
        return [r[0] for r in rows], [r[1] for r in rows]
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)]
    captions = [" ".join(rng.choice(words, size=rng.integers(6, 18))) for _ in range(n)]
    print(f"  captions: {n} generated captions (Flickr8k not found)")
    return [f"img{i // 5}" for i in range(n)], captions


def _beam_seconds(image_ids, captions, workers: int, per_task: int) -> float:
    """Wall seconds of the Relevance Beam steps (DirectRunner) plus assembling the matrix."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.relevance import beam_steps

    mode = ["--direct_running_mode=multi_processing"] if workers > 1 else []
    options = PipelineOptions([f"--direct_num_workers={workers}", *mode])
    triples = [(i, f"{i}#{k}", c) for k, (i, c) in enumerate(zip(image_ids, captions,
                                                                  strict=True))]
    with tempfile.TemporaryDirectory() as shard_dir:
        started = time.perf_counter()
        with beam.Pipeline(options=options) as pipeline:
            beam_steps.score_shards(pipeline | beam.Create(triples), shard_dir, per_task)
        beam_steps.assemble(shard_dir, beam_steps.read_eval_set(shard_dir))
        return time.perf_counter() - started


def _beam_line(image_ids, captions, workers: int, per_task: int) -> float | None:
    """Prints the end-to-end rate and the rate net of a 10-caption run's fixed cost.

    Returns the net rate, or None where the work is not measurable above the start-up noise
    (the whole run takes less than ``MIN_NET_SHARE`` more than the 10-caption run: worker
    start-up varies by seconds from run to run).
    """
    fixed = _beam_seconds(image_ids[:10], captions[:10], workers, per_task)
    total = _beam_seconds(image_ids, captions, workers, per_task)
    line = (f"  Beam DirectRunner, {workers} worker(s): {len(captions) / total:.0f} captions/s end "
            f"to end ({total:.1f} s), ")
    if total - fixed < MIN_NET_SHARE * total:
        print(line + f"net rate not measurable: the 10-caption run took {fixed:.1f} s "
              "(worker start-up noise exceeds the work)")
        return None
    net = len(captions) / (total - fixed)
    print(line + f"{net:.0f} captions/s net of the {fixed:.1f} s fixed cost (process start, "
          "imports, Beam setup)")
    return net


def bench_rouge(quick: bool) -> None:
    n = 1000 if quick else 5000
    print(f"ROUGE-L relevance, every query against all {n} captions (grouped by image):")
    image_ids, captions = _captions(n)
    gallery = sorted(set(image_ids))
    index = np.array([gallery.index(i) for i in image_ids])
    refs = {g: [c for c, i in zip(captions, image_ids, strict=True) if i == g] for g in gallery}
    sample = captions[:4 if quick else 10]
    started = time.perf_counter()
    for query in sample:
        [rouge.rouge_l(query, refs[g]) for g in gallery]
    python_rate = len(sample) / (time.perf_counter() - started)
    scorer = rouge.RelevanceScorer(captions, index, len(gallery))
    queries = captions[: 500 if quick else 2000]
    started = time.perf_counter()
    scorer.score(queries)
    numpy_rate = len(queries) / (time.perf_counter() - started)
    print(f"  plain Python rouge_l: {python_rate:.1f} captions/s")
    print(f"  bit-parallel NumPy, in-process: {numpy_rate:.0f} captions/s "
          f"({numpy_rate / python_rate:.0f}x the plain Python)")
    per_task = 128 if quick else 256
    one = _beam_line(image_ids, captions, 1, per_task)
    if quick:
        print("  (--quick skips 2 Beam workers: starting worker processes alone exceeds a minute)")
        return
    two = _beam_line(image_ids, captions, 2, per_task)
    if one is not None and two is not None:
        print(f"  2 workers / 1 worker, net: {two / one:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under ~1 minute")
    args = parser.parse_args()
    bench_metrics(args.quick)
    bench_rouge(args.quick)


if __name__ == "__main__":
    main()
