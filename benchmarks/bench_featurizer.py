"""Image featurizer throughput (images/second), measured side by side in one run.

* the bare TFLite recipe in a Python loop (no Beam: decode + invoke), the floor to compare with;
* the Beam featurizer with the in-process runner (DirectRunner, 1 worker, ``in_memory``);
* the Beam featurizer with 2 workers: 2 threads (``multi_threading``; TFLite's invoke releases
  the GIL) and 2 processes (``multi_processing``; each worker process imports TensorFlow and
  loads the model, a start-up cost of tens of seconds on a busy machine, so ``--quick`` skips it).

Beam figures are end to end (listing, worker start, model load, decode, RunInference, writing the
.npy), so the ratios show the framework overhead at this size, and what 2 workers buy on this
machine. Run: ``python -m benchmarks.bench_featurizer [--quick] [--images DIR] [--limit N]``.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import argparse  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from components.image_featurizer import outputs  # noqa: E402
from components.image_featurizer.beam_pipeline import (  # noqa: E402
    Limits,
    build_featurizer_pipeline,
)
from components.image_featurizer.config import MOBILENET_V2_TFLITE  # noqa: E402
from components.image_featurizer.decoding import decode_image  # noqa: E402
from components.image_featurizer.handlers import make_model_handler  # noqa: E402

DEFAULT_IMAGES = (
    pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k" / "images"
)
RUNNERS = {
    "in-process (1 worker)": ["--direct_num_workers=1", "--direct_running_mode=in_memory"],
    "2 workers (multi_threading)": [
        "--direct_num_workers=2",
        "--direct_running_mode=multi_threading",
    ],
    "2 workers (multi_processing)": [
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
    ],
}
QUICK_RUNNERS = ("in-process (1 worker)", "2 workers (multi_threading)")


def _bare_loop(paths: list[pathlib.Path], batch_size: int) -> float:
    """Seconds for decode + batched TFLite inference in one Python loop (model load excluded)."""
    model = make_model_handler(MOBILENET_V2_TFLITE, batch_size).load_model()
    size = MOBILENET_V2_TFLITE.image_size
    start = time.perf_counter()
    for first in range(0, len(paths), batch_size):
        chunk = paths[first : first + batch_size]
        model(np.stack([decode_image(p.read_bytes(), p.name, size).pixels for p in chunk]))
    return time.perf_counter() - start


def _beam_run(images_dir: str, out_dir: str, args: list[str], batch_size: int) -> float:
    """Seconds for one whole featurizer pipeline run on the DirectRunner with ``args``."""
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner", *args])) as pipeline:
        build_featurizer_pipeline(
            pipeline, images_dir, out_dir, "bench", MOBILENET_V2_TFLITE,
            Limits(batch_size=batch_size),
        )
    return time.perf_counter() - start


def _subset(source: pathlib.Path, limit: int, workdir: pathlib.Path) -> list[pathlib.Path]:
    """Copies the first ``limit`` images to a scratch folder (the data stays outside the repo)."""
    folder = workdir / "images"
    folder.mkdir()
    for path in sorted(source.iterdir())[:limit]:
        shutil.copy(path, folder / path.name)
    return sorted(folder.iterdir())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(DEFAULT_IMAGES))
    parser.add_argument("--limit", type=int, default=300, help="images to featurize")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--quick", action="store_true", help="60 images, no multi_processing (about a minute)"
    )
    args = parser.parse_args(argv)
    limit = min(args.limit, 60) if args.quick else args.limit
    with tempfile.TemporaryDirectory() as scratch:
        paths = _subset(pathlib.Path(args.images), limit, pathlib.Path(scratch))
        count = len(paths)
        print(f"images: {count} from {args.images}, batch {args.batch_size}, {os.cpu_count()} CPUs")
        bare = _bare_loop(paths, args.batch_size)
        print(f"{'bare TFLite loop (no Beam)':32s} {count / bare:8.1f} images/s  ({bare:.1f} s)")
        for label, runner_args in RUNNERS.items():
            if args.quick and label not in QUICK_RUNNERS:
                continue
            out_dir = str(pathlib.Path(scratch) / label.replace(" ", "_"))
            seconds = _beam_run(str(paths[0].parent), out_dir, runner_args, args.batch_size)
            names, _, _ = outputs.read_outputs(out_dir, "bench")
            if len(names) != count:
                raise RuntimeError(f"{label}: featurized {len(names)} of {count} images")
            print(
                f"{label:32s} {count / seconds:8.1f} images/s  ({seconds:.1f} s end to end; "
                f"{bare / seconds:.2f}x the bare loop's rate)"
            )


if __name__ == "__main__":
    main()
