"""Seconds per epoch on Flickr8k: in-batch vs global mining, hn vs fhn, and peak memory.

Each configuration runs in a fresh process (so its peak RSS is its own): it builds the towers,
traces the train step (excluded from the timing), times ``--steps`` optimizer steps (global
mining refreshing the whole bank every ``refresh_steps``) and extrapolates to one epoch.

The text tower is the masked-mean token tower unless ``--set text_tower=...`` says otherwise:
what is compared is the mining, whose cost MiniLM's layers would only dilute.

    python -m benchmarks.bench_training [--quick] [--set refresh_steps=50]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import pathlib  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from benchmarks import train_quality  # noqa: E402

CONFIGS = (("hn", "in_batch"), ("fhn", "in_batch"), ("hn", "global"), ("fhn", "global"))


def _measure(transformed: str, overrides: dict, steps: int) -> dict:
    """Runs in a child process: seconds per step and per epoch, peak RSS (MiB)."""
    import tensorflow_transform as tft

    from trainer import preprocessing
    from trainer.config import TrainerConfig
    from trainer.inputs import data
    from trainer.inputs.training_rows import TrainingRows
    from trainer.model import towers
    from trainer.train import training

    config = TrainerConfig.from_dict(overrides)
    output = tft.TFTransformOutput(os.path.join(transformed, "transform"))
    train = data.load_split(os.path.join(transformed, "train", "*"), output,
                            towers.text_inputs(config))
    training.set_seeds(config.seed)
    image_tower, text_tower = towers.build_towers(
        config, preprocessing.token_vocab_size(output), train.image_features.shape[-1])
    steps_per_epoch = train.num_captions // config.batch_size
    rows = TrainingRows.for_training(config, image_tower, text_tower, train)
    trainer = training.PairTrainer(config, rows, steps_per_epoch)
    batches = iter(training.epoch_batches(train.num_captions, config.batch_size, 0).repeat())

    def step() -> None:  # bank mode refreshes inside every refresh_steps-th step
        trainer.train_step(next(batches))["loss"].numpy()

    step()  # trace (and first bank refresh) outside the timing
    start = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - start) / steps
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s_per_step": per_step, "s_per_epoch": per_step * steps_per_epoch,
            "steps_per_epoch": steps_per_epoch, "peak_rss_mib": peak_mib}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=train_quality.DEFAULT_DATA)
    parser.add_argument("--work-dir", type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir()) / "xmodal_train_quality")
    parser.add_argument("--quick", action="store_true", help="500 images, 10 timed steps")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args(argv)
    overrides = train_quality.token_tower_overrides(args.set)
    transformed = train_quality.transformed_for(args, overrides)
    steps = 10 if args.quick else args.steps
    context = multiprocessing.get_context("spawn")
    rows = {}
    for loss, mining in CONFIGS:
        config = {**overrides, "loss": loss, "mining": mining}
        with context.Pool(1) as pool:
            rows[(loss, mining)] = pool.apply(_measure, (str(transformed), config, steps))
    base = rows[("hn", "in_batch")]["s_per_epoch"]
    print(f"overrides: {overrides or 'defaults'}; {steps} timed steps per configuration")
    print("| loss | mining | s/step | s/epoch | x hn in_batch | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (loss, mining), row in rows.items():
        print(f"| {loss} | {mining} | {row['s_per_step']:.3f} | {row['s_per_epoch']:.1f} | "
              f"{row['s_per_epoch'] / base:.2f} | {row['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
