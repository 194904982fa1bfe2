"""Fine-tuning the ``minilm`` text tower on Flickr8k, with and without its frozen-bottom cache.

On the WordPiece Transform output of ``benchmarks.minilm_served_quality`` (made, or reused,
under the same ``--work-dir``), builds a ``text_tower="minilm"`` Trainer with the top
``--layers`` layers fine-tuned and measures, side by side:

- the one-off pass of the frozen bottom over the 30,000 train and 5,000 eval captions, and the
  memory its token states take (``trainer.frozen_prefix``);
- seconds per train step (``--steps`` steps after one traced step) through the cache and with
  the cache off (``TrainingRows`` without a ``text_prefix``: the whole tower every step), and the
  resulting seconds per epoch;
- one evaluation of the eval captions through the cache and through the whole tower.

``--pipeline-root`` reads a pipeline run's Transform output instead (the same data its Trainer
read), to compare the step time with the one the Trainer printed on the same host.

    python -m benchmarks.bench_minilm_finetune [--quick] [--layers 1] [--steps 20]
        [--pipeline-root ROOT]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import pathlib  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import tensorflow_transform as tft  # noqa: E402

from benchmarks.minilm_served_quality import transformed_flickr8k  # noqa: E402
from benchmarks.train_quality import DEFAULT_DATA  # noqa: E402
from trainer import data, evaluation, frozen_prefix, host_speed, towers, training  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402
from trainer.training_rows import TrainingRows  # noqa: E402


def _seconds(fn) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _seconds_per_step(trainer: training.PairTrainer, batches, steps: int) -> float:
    """Mean seconds of ``steps`` train steps, after one untimed (traced) step."""
    trainer.train_step(next(batches))["loss"].numpy()
    _, seconds = _seconds(lambda: [trainer.train_step(next(batches))["loss"].numpy()
                                   for _ in range(steps)])
    return seconds / steps


def _transformed(args: argparse.Namespace) -> tuple[str, str, str]:
    """(transform graph dir, train files, eval files): a pipeline run's, or made here."""
    if args.pipeline_root:
        def newest(kind: str) -> pathlib.Path:
            runs = sorted((args.pipeline_root / "Transform" / kind).iterdir(),
                          key=lambda path: int(path.name))
            if not runs:
                raise FileNotFoundError(f"{args.pipeline_root}: no Transform {kind}")
            return runs[-1]
        examples = newest("transformed_examples")
        return (str(newest("transform_graph")), str(examples / "Split-train" / "*"),
                str(examples / "Split-eval" / "*"))
    work = args.work_dir / ("quick" if args.quick else "full")
    _, transformed = transformed_flickr8k(args.data, work, 300 if args.quick else None)
    return (str(transformed / "transform"), str(transformed / "train" / "*"),
            str(transformed / "eval" / "*"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--work-dir", type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir()) / "xmodal_minilm_served")
    parser.add_argument("--quick", action="store_true", help="300 images per split, 3 steps")
    parser.add_argument("--layers", type=int, default=1, help="top MiniLM layers fine-tuned")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pipeline-root", type=pathlib.Path,
                        help="read the newest Transform output of this pipeline root (what its "
                             "Trainer read) instead of making one")
    args = parser.parse_args(argv)
    graph, train_files, eval_files = _transformed(args)
    output = tft.TFTransformOutput(graph)
    config = TrainerConfig(text_tower="minilm", minilm_trainable_layers=args.layers)
    keys = towers.text_inputs(config)
    train = data.load_split(train_files, output, keys)
    eval_split = data.load_split(eval_files, output, keys)
    training.set_seeds(config.seed)
    image_tower, text_tower = towers.build_towers(config, 0, train.image_features.shape[-1])
    steps_per_epoch = train.num_captions // config.batch_size
    steps = 3 if args.quick else args.steps
    cached_rows, build_train = _seconds(lambda: TrainingRows.for_training(
        config, image_tower, text_tower, train))
    cached = training.PairTrainer(config, cached_rows, steps_per_epoch)
    eval_prefix, build_eval = _seconds(lambda: frozen_prefix.FrozenPrefix(
        text_tower, eval_split.text, config.eval_batch_size))
    batches = iter(training.epoch_batches(train.num_captions, config.batch_size, 0).repeat())
    step_cached = _seconds_per_step(cached, batches, steps)
    uncached = training.PairTrainer(config, TrainingRows(image_tower, text_tower, train),
                                    steps_per_epoch)
    step_full = _seconds_per_step(uncached, batches, steps)
    _, eval_cached = _seconds(lambda: evaluation.evaluate(
        image_tower, text_tower, eval_split, config.eval_batch_size, eval_prefix))
    _, eval_full = _seconds(lambda: evaluation.evaluate(
        image_tower, text_tower, eval_split, config.eval_batch_size))
    megabytes = [p.values.numpy().nbytes / 1e6 for p in (cached_rows.text_prefix, eval_prefix)]
    print(host_speed.matmul_rate().describe())
    print(f"minilm, top {args.layers} layer(s) fine-tuned; {train.num_captions} train / "
          f"{eval_split.num_captions} eval captions; {steps} timed steps of "
          f"{config.batch_size}; {steps_per_epoch} steps per epoch")
    print(f"frozen bottom ({cached_rows.text_prefix.first_block} layers), computed once: train "
          f"{build_train:.0f} s, {megabytes[0]:.0f} MB; eval {build_eval:.0f} s, "
          f"{megabytes[1]:.0f} MB; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("| text tower per step | s/step | s/epoch | eval s |")
    print("| --- | --- | --- | --- |")
    for name, step, seconds in (("cached frozen bottom + top layers", step_cached, eval_cached),
                                ("whole tower (cache off)", step_full, eval_full)):
        print(f"| {name} | {step:.3f} | {step * steps_per_epoch:.0f} | {seconds:.0f} |")
    print(f"cache speed-up per step: x{step_full / step_cached:.2f}; per eval "
          f"x{eval_full / eval_cached:.2f}")


if __name__ == "__main__":
    main()
