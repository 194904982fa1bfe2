"""Fine-tuning the ``minilm`` text tower on Flickr8k, with and without its frozen-bottom cache.

On the WordPiece Transform output of ``benchmarks.report_minilm_served`` (made, or reused,
under the same ``--work-dir``), builds a ``text_tower="minilm"`` Trainer with the top
``--layers`` layers fine-tuned and measures, side by side:

- the one-off pass of the frozen bottom over the 30,000 train and 5,000 eval captions, and the
  memory its token states take (``trainer.inputs.frozen_prefix``);
- seconds per train step (``--steps`` steps after one traced step) through the cache and with
  the cache off (``TrainingRows`` without a ``text_prefix``: the whole tower every step), and the
  resulting seconds per epoch;
- the first (traced) step through the cache, and from it the s/step that a Trainer's
  ``epoch N (x s/step)`` lines show on this host: those divide an epoch's wall time by its
  steps, so epoch 1 carries the tracing and later epochs are the steady step;
- one evaluation of the eval captions through the cache and through the whole tower.

``--pipeline-root`` reads a pipeline run's Transform output instead (the same data its Trainer
read), and ``--transformed`` a ``benchmarks.train_quality`` Transform folder, to compare the
step time with the one that Trainer printed on the same host.

    python -m benchmarks.bench_minilm_finetune [--quick] [--layers 1] [--steps 20]
        [--pipeline-root ROOT | --transformed DIR]
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

from benchmarks.report_minilm_served import transformed_flickr8k  # noqa: E402
from benchmarks.train_quality import DEFAULT_DATA  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402
from trainer.inputs import data, frozen_prefix
from trainer.inputs.training_rows import TrainingRows  # noqa: E402
from trainer.model import towers
from trainer.train import evaluation, host_speed, training


def _seconds(fn) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _seconds_per_step(trainer: training.PairTrainer, batches, steps: int) -> tuple[float, float]:
    """(seconds of the first, traced step; mean seconds of the ``steps`` steps after it)."""
    _, first = _seconds(lambda: trainer.train_step(next(batches))["loss"].numpy())
    _, seconds = _seconds(lambda: [trainer.train_step(next(batches))["loss"].numpy()
                                   for _ in range(steps)])
    return first, seconds / steps


def epoch_line_seconds(first: float, step: float, steps_per_epoch: int) -> tuple[float, float]:
    """The s/step a Trainer's ``epoch N (x s/step)`` lines show, from this benchmark's figures.

    Those lines divide an epoch's wall time by its steps: the first epoch holds the traced
    first step, later epochs only steady steps.

    Returns:
        (epoch 1's s/step, later epochs' s/step).

    """
    return (first + (steps_per_epoch - 1) * step) / steps_per_epoch, step


def _transformed(args: argparse.Namespace) -> tuple[str, str, str]:
    """(transform graph dir, train files, eval files): a pipeline run's, given, or made here."""
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
    transformed = args.transformed
    if transformed is None:
        work = args.work_dir / ("quick" if args.quick else "full")
        _, transformed = transformed_flickr8k(args.data, work, 300 if args.quick else None)
    return (str(transformed / "transform"), str(transformed / "train" / "*"),
            str(transformed / "eval" / "*"))


def _parse(argv: list[str] | None) -> argparse.Namespace:
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
    parser.add_argument("--transformed", type=pathlib.Path,
                        help="read this benchmarks.train_quality Transform folder (transform/, "
                             "train/, eval/) instead of making one")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    """Builds the towers on the transformed splits and times the cache, steps and evaluations."""
    graph, train_files, eval_files = _transformed(args)
    output = tft.TFTransformOutput(graph)
    config = TrainerConfig(text_tower="minilm", minilm_trainable_layers=args.layers)
    keys = towers.text_inputs(config)
    train = data.load_split(train_files, output, keys)
    eval_split = data.load_split(eval_files, output, keys)
    training.set_seeds(config.seed)
    image_tower, text_tower = towers.build_towers(config, 0, train.image_features.shape[-1])
    figures = {"config": config, "train": train.num_captions, "eval": eval_split.num_captions,
               "steps_per_epoch": train.num_captions // config.batch_size,
               "steps": 3 if args.quick else args.steps}
    rows, figures["build_train"] = _seconds(lambda: TrainingRows.for_training(
        config, image_tower, text_tower, train))
    cached = training.PairTrainer(config, rows, figures["steps_per_epoch"])
    eval_prefix, figures["build_eval"] = _seconds(lambda: frozen_prefix.FrozenPrefix(
        text_tower, eval_split.text, config.eval_batch_size))
    batches = iter(training.epoch_batches(train.num_captions, config.batch_size, 0).repeat())
    figures["first"], figures["step_cached"] = _seconds_per_step(cached, batches,
                                                                 figures["steps"])
    uncached = training.PairTrainer(config, TrainingRows(image_tower, text_tower, train),
                                    figures["steps_per_epoch"])
    _, figures["step_full"] = _seconds_per_step(uncached, batches, figures["steps"])
    _, figures["eval_cached"] = _seconds(lambda: evaluation.evaluate(
        image_tower, text_tower, eval_split, config.eval_batch_size, eval_prefix))
    _, figures["eval_full"] = _seconds(lambda: evaluation.evaluate(
        image_tower, text_tower, eval_split, config.eval_batch_size))
    figures["first_block"] = rows.text_prefix.first_block
    figures["megabytes"] = [p.values.numpy().nbytes / 1e6 for p in (rows.text_prefix.prefix,
                                                                    eval_prefix)]
    return figures


def report(f: dict, layers: int) -> None:
    """Prints the host, the cache's cost, the per-step table and the epoch-line figures."""
    print(host_speed.matmul_rate().describe())
    print(f"minilm, top {layers} layer(s) fine-tuned; {f['train']} train / {f['eval']} eval "
          f"captions; {f['steps']} timed steps of {f['config'].batch_size}; "
          f"{f['steps_per_epoch']} steps per epoch")
    print(f"frozen bottom ({f['first_block']} layers), computed once: train "
          f"{f['build_train']:.0f} s, {f['megabytes'][0]:.0f} MB; eval {f['build_eval']:.0f} s, "
          f"{f['megabytes'][1]:.0f} MB; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("| text tower per step | s/step | s/epoch | eval s |")
    print("| --- | --- | --- | --- |")
    for name, step, seconds in (
            ("cached frozen bottom + top layers", f["step_cached"], f["eval_cached"]),
            ("whole tower (cache off)", f["step_full"], f["eval_full"])):
        print(f"| {name} | {step:.3f} | {step * f['steps_per_epoch']:.0f} | {seconds:.0f} |")
    print(f"cache speed-up per step: x{f['step_full'] / f['step_cached']:.2f}; per eval "
          f"x{f['eval_full'] / f['eval_cached']:.2f}")
    first_epoch, later = epoch_line_seconds(f["first"], f["step_cached"], f["steps_per_epoch"])
    print(f"first (traced) step {f['first']:.1f} s; a Trainer's epoch lines on this host: "
          f"epoch 1 ({first_epoch:.3f} s/step), epochs 2+ ({later:.3f} s/step)")


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    report(measure(args), args.layers)


if __name__ == "__main__":
    main()
