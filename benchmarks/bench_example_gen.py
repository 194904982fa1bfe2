"""Caption ExampleGen throughput (examples/second), measured side by side in one run.

* ``python``: the per-record work alone, in one process, no Beam: read + validate the captions,
  join the features, serialize the tf.Examples (``readers``, ``FeatureTable``, ``to_example``).
* ``beam 1 worker``: the executor end to end (``Executor().Do``, DirectRunner in memory), with the
  whole-dataset checks, the split partition, GZIP TFRecord writing and the ingest report.
* ``beam 2 workers`` (full run only): the same on the multi-processing DirectRunner.

Data: the real Flickr8k (35,000 captions, 1280-d features) from ``../shared/data/flickr8k`` when
present, else a synthetic dataset of the same shape. ``--quick`` uses a 1,000-image synthetic
dataset (5,000 captions) and one Beam run.
Run: ``python -m benchmarks.bench_example_gen [--quick]``.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from components.caption_example_gen import DatasetSpec, detect  # noqa: E402
from components.caption_example_gen.synthetic import (  # noqa: E402
    SyntheticConfig,
    write_synthetic_dataset,
)

FLICKR8K = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"


def _dataset(quick: bool, tmp: str) -> tuple[str, DatasetSpec, str]:
    if not quick and (FLICKR8K / "Flickr8k.token.txt").exists():
        return str(FLICKR8K), detect(str(FLICKR8K)), "real Flickr8k"
    images = 1000 if quick else 7000
    config = SyntheticConfig(num_images=images, feature_dim=1280)
    return tmp, write_synthetic_dataset(tmp, config), f"synthetic, {images} images"


def python_only(input_base: str, spec: DatasetSpec) -> tuple[int, float]:
    """The per-record work without Beam: returns (examples, seconds)."""
    from components.caption_example_gen.beam_steps import to_example
    from components.caption_example_gen.feature_table import FeatureTable
    from components.caption_example_gen.readers import read_flickr_tokens

    start = time.perf_counter()
    table = FeatureTable(
        os.path.join(input_base, spec.image_features),
        os.path.join(input_base, spec.image_feature_names),
        spec.image_feature_dim,
    )
    count = 0
    for record in read_flickr_tokens(os.path.join(input_base, spec.captions[0])):
        to_example(record, table.row(record.image_id), None)
        count += 1
    return count, time.perf_counter() - start


def beam_executor(input_base: str, spec: DatasetSpec, out: str, workers: int) -> tuple[int, float]:
    """The executor end to end: returns (examples written, seconds)."""
    from components.caption_example_gen.local import run_executor

    args = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    if workers > 1:
        args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    start = time.perf_counter()
    _, report = run_executor(input_base, spec, out, beam_args=args)
    seconds = time.perf_counter() - start
    return sum(v for k, v in report["counts"].items() if k.startswith("examples_")), seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small synthetic data, < ~1 minute")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        input_base, spec, what = _dataset(args.quick, os.path.join(tmp, "data"))
        print(f"caption ExampleGen throughput on {what} ({spec.image_feature_dim}-d features)")
        n, python_s = python_only(input_base, spec)
        rows = [("python (no Beam)", n, python_s)]
        for workers in (1,) if args.quick else (1, 2):
            out = os.path.join(tmp, f"out{workers}")
            n, seconds = beam_executor(input_base, spec, out, workers)
            rows.append((f"beam executor, {workers} worker(s)", n, seconds))
    print(f"{'run':34s} {'examples':>9s} {'seconds':>8s} {'ex/s':>8s} {'vs python':>9s}")
    for name, count, seconds in rows:
        ratio = (count / seconds) / (rows[0][1] / rows[0][2])
        print(f"{name:34s} {count:9d} {seconds:8.1f} {count / seconds:8.0f} {ratio:8.2f}x")


if __name__ == "__main__":
    main()
