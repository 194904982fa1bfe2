"""The Trainer's step of the default tower against the host's matmul roof, padded vs flat.

The pipeline's default model (``TrainerConfig()``: the ``minilm`` text tower with its top layer
fine-tuned over the cached frozen bottom, the linear image tower, batch 128, in-batch F-HN) on
Flickr8k train captions (WordPiece, ``TransformConfig``'s length) and image
features. Side by side in one run, interleaved round by round so that every variant sees the
same load of a shared host:

- today's step, the trained layer on captions padded to the batch's longest, in float32;
- the step on the batch's real tokens only (``trainer.model.unpadded``), in float32 and in bfloat16
  (``trainer.precision``: the trained layer's and the text projection's matmuls);
- the trained layer alone (forward and gradients), padded and flat;
- plain square ``tf.matmul`` s (1024², 2048², 4096²) in float32 and in bfloat16: the roof
  of each precision is its fastest.

FLOPs are counted from the shapes (``step_flops``; matmuls only), and each time is reported
as s/step, GFLOP/s and the fraction of the roof in its precision (wall-clock medians).

    python -m benchmarks.bench_train_step [--quick] [--captions N] [--rounds R] [--steps S]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import harness  # noqa: E402
from benchmarks.machine import cpu_model  # noqa: E402
from benchmarks.train_step_flops import layer_flops, padding_share, step_flops  # noqa: E402
from benchmarks.train_step_setup import Setup, build_setup  # noqa: E402
from trainer.model import precision

ROOF_SIZES = (1024, 2048, 4096)


@dataclasses.dataclass
class Timed:
    """One timed variant: a function of a batch's caption rows, its precision and its FLOPs."""

    name: str
    compute: str
    run: Callable[[np.ndarray], object]
    flops: float  # mean FLOPs per call over the timed batches
    seconds: list[float] = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float:
        """GFLOP/s at the median time."""
        return self.flops / statistics.median(self.seconds) / 1e9


def _roof(dtype: tf.DType, size: int) -> Timed:
    """A plain ``size``² ``tf.matmul`` in ``dtype``, timed like the variants."""
    step, flops = harness.matmul_step(dtype, size)
    return Timed(f"roof {dtype.name} {size}", dtype.name, lambda batch: step(), float(flops))


def roofs(variants: list[Timed]) -> dict[str, float]:
    """The roof of each precision: its fastest plain square matmul, GFLOP/s.

    The best size differs by precision (oneDNN's bfloat16 matmul runs 1024² faster than
    4096² on AVX512_BF16), so each precision's roof is its own best of ``ROOF_SIZES``.
    """
    best: dict[str, float] = {}
    for variant in variants:
        if variant.name.startswith("roof"):
            best[variant.compute] = max(best.get(variant.compute, 0.0), variant.rate)
    return best


def _variants(setup: Setup, batches: list[np.ndarray]) -> list[Timed]:
    """The steps and trained layers of each variant, with mean FLOPs over ``batches``."""
    lengths = [setup.lengths[batch] for batch in batches]
    timed = []
    for kind, run, count in (("step", setup.step, step_flops),
                             ("trained layer", setup.layer, layer_flops)):
        for name in setup.prefixes:
            padded = name.startswith("padded")
            flops = statistics.fmean(count(setup.config, batch, padded) for batch in lengths)
            timed.append(Timed(f"{kind}, {name}", name.split()[-1], run(name), flops))
    return timed + [_roof(dtype, size) for dtype in (tf.float32, tf.bfloat16)
                    for size in ROOF_SIZES]


def _time(variants: list[Timed], batches: list[np.ndarray], rounds: int, steps: int) -> None:
    """Interleaved rounds: each variant runs ``steps`` calls on the round's batches in turn."""
    for variant in variants:  # trace and warm up
        variant.run(batches[0])
    for round_index in range(rounds):
        chunk = batches[1 + round_index * steps: 1 + (round_index + 1) * steps]
        for variant in variants:
            start = time.perf_counter()
            for batch in chunk:
                variant.run(batch)
            variant.seconds.append((time.perf_counter() - start) / steps)


def _line(variant: Timed, roofs: dict[str, float], baseline: Timed) -> str:
    seconds = statistics.median(variant.seconds)
    speedup = ("" if baseline is variant else
               f", x{statistics.median(baseline.seconds) / seconds:.2f} vs padded float32")
    return (f"{variant.name}: {seconds:.4f} s, {variant.flops / 1e9:.2f} GFLOP, "
            f"{variant.rate:.0f} GFLOP/s = {variant.rate / roofs[variant.compute]:.2f} of the "
            f"{variant.compute} roof{speedup}")


def report(setup: Setup, variants: list[Timed], batches: list[np.ndarray],
           losses: dict[str, float]) -> None:
    """Prints the summary block: host, roofs, padding, one line per variant, the losses."""
    flag = precision.native_bf16(precision.cpu_flags()) or "no native bfloat16"
    roof = roofs(variants)
    squares = ", ".join(f"{v.name.removeprefix('roof ')}² {v.rate:.0f}" for v in variants
                        if v.name.startswith("roof"))
    padding = statistics.fmean(padding_share(setup.lengths[batch]) for batch in batches)
    print(f"== summary: bench_train_step (default tower: minilm, top "
          f"{setup.config.minilm_trainable_layers} layer fine-tuned; batch "
          f"{setup.config.batch_size}; {setup.num_captions} Flickr8k train captions) ==")
    print(f"host: {cpu_model()}, {len(os.sched_getaffinity(0))} cores, {flag}; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"roof: fastest plain square matmul, float32 {roof['float32']:.0f} GFLOP/s, "
          f"bfloat16 {roof['bfloat16']:.0f} GFLOP/s ({squares}; wall-clock medians, "
          "interleaved with the steps)")
    print(f"tokens: {np.mean(setup.lengths):.1f} real per caption on average; padded batches "
          f"hold {padding:.0%} padding")
    for group in ("step", "trained layer"):
        members = [v for v in variants if v.name.startswith(group + ",")]
        for variant in members:
            print(_line(variant, roof, members[0]))
    reference = losses["padded float32"]
    print("loss of one step from the same weights: " + ", ".join(
        f"{name} {value:.6f} ({value - reference:+.1e})" for name, value in losses.items()))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000 captions, 3 rounds of 2 steps")
    parser.add_argument("--captions", type=int, help="train captions (default: all 30,000)")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default 5)")
    parser.add_argument("--steps", type=int, help="steps per variant per round (default 4)")
    parser.add_argument("--data", help="Flickr8k folder (default $FLICKR8K_DIR or "
                                       "../shared/data/flickr8k)")
    args = parser.parse_args(argv)
    args.captions = args.captions or (2000 if args.quick else None)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.steps = args.steps or (2 if args.quick else 4)
    for name in ("captions", "rounds", "steps"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name} must be > 0, got {value}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    setup = build_setup(args.data, args.captions)
    rng = np.random.default_rng(0)
    batches = [rng.choice(setup.num_captions, setup.config.batch_size, replace=False)
               for _ in range(1 + args.rounds * args.steps)]
    losses = setup.first_losses(batches[0])
    variants = _variants(setup, batches[1:])
    _time(variants, batches, args.rounds, args.steps)
    report(setup, variants, batches[1:], losses)


if __name__ == "__main__":
    main()
