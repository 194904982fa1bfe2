"""Streaming input: peak RSS on a generated 1M-caption split; step time and rsum vs memory.

Three measurements, each in a fresh process (its peak RSS and TensorFlow state its own):

1. ``stream`` training steps on a generated split of 1,000,000 captions / 200,000 images with
   Flickr8k's transformed features (1280-d image features, 32 caption token ids and a length,
   the ids), written once as GZIP TFRecords in Transform's output format under the cache folder
   and reused: the ``auto`` input choice, seconds per step and the process's peak RSS
   (``VmHWM``: its record count, the towers, the steps).
2. Seconds per in-batch training step on Flickr8k, ``memory`` vs ``stream`` input, interleaved
   round by round in one process (the input pipeline's time is inside the stream step).
3. Eval rsum on Flickr8k after ``--epochs`` epochs, ``memory`` vs ``stream``, same config.

The text tower is the masked-mean token tower unless ``--set text_tower=...`` says otherwise:
the generated split carries token ids, not WordPiece ids.

    python -m benchmarks.bench_stream [--quick] [--steps 400] [--epochs 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import train_quality  # noqa: E402

FULL = {"captions": 1_000_000, "images": 200_000, "files": 16}
QUICK = {"captions": 20_000, "images": 4_000, "files": 4}
IMAGE_DIM, MAX_TOKENS, CHUNK_IMAGES = 1280, 32, 1000
DISK_BYTES_PER_CAPTION = 3000  # GZIP level 1 of one example, with room: the free-disk check
RSS_LIMIT_GIB, STEP_RATIO_LIMIT, RSUM_GAP_LIMIT = 3.0, 1.2, 2.0


def _example(values: dict) -> bytes:
    """One serialized tf.Example: bytes, float32 and int64 features as Transform writes them."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for key, value in values.items():
        feature = example.features.feature[key]
        if isinstance(value, bytes):
            feature.bytes_list.value.append(value)
        elif value.dtype == np.float32:
            feature.float_list.value.extend(value)
        else:
            feature.int64_list.value.extend(value)
    return example.SerializeToString()


def _chunk(rng: np.random.Generator, first_image: int, num_images: int, per_image: int,
           vocab_size: int):
    """Serialized transformed examples of images [first, first + n), ``per_image`` captions each.

    Images are dequantized 8-bit values, z-scored: the value set of Flickr8k's MobileNetV2
    features (so that GZIP compresses them as it does the real ones).
    """
    from trainer import features

    images = ((rng.integers(0, 256, [num_images, IMAGE_DIM]) - 128) / 40).astype(np.float32)
    count = num_images * per_image
    lengths = rng.integers(5, MAX_TOKENS + 1, count)
    tokens = rng.integers(1, vocab_size, [count, MAX_TOKENS])
    tokens[np.arange(MAX_TOKENS)[None, :] >= lengths[:, None]] = 0  # padding id
    # Serialized messages concatenate into one whose map holds both parts' entries (a protobuf
    # parse merges them), so each image's 1280 floats are serialized once, not per caption.
    image_parts = [_example({features.IMAGE_FEATURES_XF: image}) for image in images]
    for row in range(count):
        image_id = f"gen{first_image + row // per_image}.jpg"
        yield image_parts[row // per_image] + _example({
            features.IMAGE_ID_KEY: image_id.encode(),
            features.CAPTION_ID_KEY: f"{image_id}#{row % per_image}".encode(),
            features.CAPTION_TOKENS_XF: tokens[row],
            features.CAPTION_LENGTH_XF: lengths[row:row + 1]})


def generate_split(folder: pathlib.Path, size: dict, vocab_size: int, seed: int = 0) -> str:
    """Writes (once; reused when its ``done.json`` matches) the generated split; its pattern.

    Raises:
        OSError: the disk under ``folder`` has too little free space for the split.

    """
    import tensorflow as tf

    marker = folder / "done.json"
    wanted = {**size, "vocab_size": vocab_size, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return str(folder / "part-*.gz")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    need, free = size["captions"] * DISK_BYTES_PER_CAPTION, shutil.disk_usage(folder).free
    if need > free:
        raise OSError(f"{folder}: the generated split needs ~{need / 2**30:.1f} GiB, "
                      f"{free / 2**30:.1f} GiB free")
    options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)
    writers = [tf.io.TFRecordWriter(str(folder / f"part-{i:05d}.gz"), options)
               for i in range(size["files"])]
    rng, per_image = np.random.default_rng(seed), size["captions"] // size["images"]
    for number, first in enumerate(range(0, size["images"], CHUNK_IMAGES)):
        chunk = min(CHUNK_IMAGES, size["images"] - first)
        for record in _chunk(rng, first, chunk, per_image, vocab_size):
            writers[number % len(writers)].write(record)
    for writer in writers:
        writer.close()
    marker.write_text(json.dumps(wanted))
    return str(folder / "part-*.gz")


def _peak_rss_gib() -> float:
    """Peak resident set size (``VmHWM``) of this process, GiB.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries it across fork + exec, so a spawned child
    would report its parent's peak whenever that is higher.
    """
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("/proc/self/status has no VmHWM line: the peak RSS needs Linux")


def _towers(config, output):
    from trainer import preprocessing
    from trainer.model import towers
    from trainer.train import training

    training.set_seeds(config.seed)
    return towers.build_towers(config, preprocessing.token_vocab_size(output), IMAGE_DIM)


def _stream_rss(transformed: str, pattern: str, overrides: dict, steps: int) -> dict:
    """Runs in a child process: the ``auto`` choice, s/step and peak RSS of stream steps."""
    import tensorflow_transform as tft

    from trainer.config import TrainerConfig
    from trainer.inputs import stream_input
    from trainer.model import towers
    from trainer.train import training

    config = TrainerConfig.from_dict(overrides)
    output = tft.TFTransformOutput(f"{transformed}/transform")
    start = time.perf_counter()
    split = stream_input.training_input(config, pattern, output, towers.text_inputs(config))
    if not isinstance(split, stream_input.StreamSplit):
        raise RuntimeError(f"input 'auto' did not stream {pattern}; raise its size")
    count_seconds = time.perf_counter() - start
    estimate = (stream_input.LOAD_PEAK_FACTOR * split.num_examples
                * stream_input.example_bytes(split.spec))
    trainer = training.PairTrainer(config, stream_input.BatchRows(*_towers(config, output)),
                                   split.num_captions // config.batch_size)
    batches = iter(split.batches(config.batch_size, config.seed + 1))
    trainer.train_step(next(batches))["loss"].numpy()  # trace outside the timing
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))["loss"].numpy()
    return {"examples": split.num_examples, "steps": steps, "estimate_gib": estimate / 2**30,
            "count_seconds": count_seconds, "s_per_step": (time.perf_counter() - start) / steps,
            "peak_rss_gib": _peak_rss_gib()}


def _step_times(transformed: str, overrides: dict, rounds: int, steps: int) -> dict:
    """Runs in a child process: median s/step of memory and stream input, interleaved."""
    import tensorflow_transform as tft

    from benchmarks import harness, machine
    from trainer.config import TrainerConfig
    from trainer.inputs import data, stream_input
    from trainer.inputs.training_rows import TrainingRows
    from trainer.model import towers
    from trainer.train import training

    config = TrainerConfig.from_dict(overrides)
    output = tft.TFTransformOutput(f"{transformed}/transform")
    text_keys, pattern = towers.text_inputs(config), f"{transformed}/train/*"
    table = data.load_split(pattern, output, text_keys)
    split = stream_input.StreamSplit(
        tuple(data.matching_files(pattern)),
        stream_input.stream_spec(output.transformed_feature_spec(), text_keys),
        table.num_captions, config.shuffle_buffer)
    per_epoch, batch = table.num_captions // config.batch_size, config.batch_size
    memory = training.PairTrainer(
        config, TrainingRows.for_training(config, *_towers(config, output), table), per_epoch)
    stream = training.PairTrainer(config, stream_input.BatchRows(*_towers(config, output)),
                                  per_epoch)
    inputs = {"memory": (memory, iter(training.epoch_batches(table.num_captions, batch, 1)
                                      .repeat())),
              "stream": (stream, iter(split.batches(batch, 1).repeat()))}

    def run(name: str):
        trainer, batches = inputs[name]
        return lambda: [trainer.train_step(next(batches))["loss"].numpy() for _ in range(steps)]

    medians = harness.interleaved_medians({name: run(name) for name in inputs}, rounds)
    return {**{name: seconds / steps for name, seconds in medians.items()},
            "machine": machine.describe()}


def _rsums(transformed: str, overrides: dict, work_dir: str) -> dict:
    """Runs in a child process: best eval rsum and seconds of a Trainer run per input mode.

    Each run is ``trainer.task``'s whole train-and-export; it seeds and builds its own towers.
    """
    from trainer.config import TrainerConfig

    rsums = {}
    for mode in ("memory", "stream"):
        result, seconds = train_quality.run(
            TrainerConfig.from_dict({**overrides, "input": mode}), pathlib.Path(transformed),
            pathlib.Path(work_dir) / f"stream_bench_{mode}", verbose=0)
        rsums[mode] = {"rsum": result.best_metrics["rsum"], "seconds": seconds}
    return rsums


def _child(fn, *args):
    """``fn(*args)`` in a fresh spawned process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def _parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tmp = pathlib.Path(tempfile.gettempdir())
    parser.add_argument("--data", type=pathlib.Path, default=train_quality.DEFAULT_DATA)
    parser.add_argument("--work-dir", type=pathlib.Path, default=tmp / "xmodal_train_quality",
                        help="Flickr8k's Transform output is cached here (as bench_training)")
    parser.add_argument("--cache", type=pathlib.Path, default=tmp / "xmodal_stream_split",
                        help="the generated split is written here once")
    parser.add_argument("--quick", action="store_true",
                        help="20k generated captions, 500 Flickr8k images, 1 epoch")
    parser.add_argument("--steps", type=int, default=400, help="stream steps on the big split")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds of 10 steps")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the rsum runs")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    import tensorflow_transform as tft

    from trainer import preprocessing

    args = _parse(argv)
    overrides = train_quality.token_tower_overrides(args.set)
    size = QUICK if args.quick else FULL
    transformed = str(train_quality.transformed_for(args, overrides))
    folder = args.cache / ("quick" if args.quick else "full")
    start = time.perf_counter()
    output = tft.TFTransformOutput(f"{transformed}/transform")
    pattern = generate_split(folder, size, preprocessing.token_vocab_size(output))
    disk_gib = sum(path.stat().st_size for path in folder.glob("part-*.gz")) / 2**30
    print(f"generated split: {folder} ({disk_gib:.2f} GiB), ready in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    # The quick split is small: a budget that it exceeds makes 'auto' stream it.
    big = {**overrides, "input": "auto", **({"memory_budget_gb": 0.05} if args.quick else {})}
    rss = _child(_stream_rss, transformed, pattern, big, 20 if args.quick else args.steps)
    print(f"stream on the generated split: {rss}", flush=True)
    steps = _child(_step_times, transformed, overrides, 5 if args.quick else args.rounds, 10)
    print(f"Flickr8k step times: {steps}", flush=True)
    epochs = 1 if args.quick else args.epochs
    rsums = _child(_rsums, transformed, {**overrides, "epochs": epochs}, str(args.work_dir))
    print(f"Flickr8k rsum: {rsums}", flush=True)
    _summary(size, disk_gib, rss, steps, rsums, epochs, overrides)


def _verdict(ok: bool) -> str:
    return "within limit" if ok else "OVER LIMIT"


def _summary(size: dict, disk_gib: float, rss: dict, steps: dict, rsums: dict, epochs: int,
             overrides: dict) -> None:
    """The closing figures as ``label: value`` lines: ``make bench`` records each as a row."""
    from trainer.config import TrainerConfig

    config = TrainerConfig.from_dict(overrides)
    machine, ratio = steps["machine"], steps["stream"] / steps["memory"]
    gap = rsums["stream"]["rsum"] - rsums["memory"]["rsum"]
    print(f"== summary: bench_stream (stream vs memory input; {config.text_tower} text tower, "
          f"batch {config.batch_size}, loss {config.loss}; overrides {overrides or 'none'}) ==")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, float32 matmul "
          f"{machine['matmul_gflops']} GFLOP/s, load {machine['load']}")
    print(f"generated split: {size['captions']:,} captions / {size['images']:,} images, "
          f"{size['files']} GZIP files, {disk_gib:.2f} GiB on disk; auto -> stream (memory "
          f"estimate {rss['estimate_gib']:.2f} GiB; record count {rss['count_seconds']:.0f} s)")
    rss_ok = rss["peak_rss_gib"] < RSS_LIMIT_GIB
    print(f"stream peak RSS: {rss['peak_rss_gib']:.2f} GiB over {rss['steps']} steps at "
          f"{rss['s_per_step']:.3f} s/step (limit {RSS_LIMIT_GIB:g} GiB, {_verdict(rss_ok)})")
    print(f"Flickr8k in-batch step: memory {steps['memory'] * 1e3:.1f} ms, stream "
          f"{steps['stream'] * 1e3:.1f} ms = {ratio:.2f}x (limit {STEP_RATIO_LIMIT:g}x, "
          f"{_verdict(ratio <= STEP_RATIO_LIMIT)})")
    print(f"Flickr8k eval rsum after {epochs} epochs: memory {rsums['memory']['rsum']:.2f}, "
          f"stream {rsums['stream']['rsum']:.2f}, stream - memory {gap:+.2f} (limit "
          f"+-{RSUM_GAP_LIMIT:g}, {_verdict(abs(gap) <= RSUM_GAP_LIMIT)})")


if __name__ == "__main__":
    main()
