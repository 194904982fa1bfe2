"""Our training step vs the paper's loop on Flickr8k, and hardware efficiency.

Measured side by side in one run (``python -m benchmarks.bench_vs_paper [--quick]``):

- seconds per epoch of the paper's loop (``benchmarks.paper_loop``), of our exact mode (global
  mining, bank refreshed every step, float32) and of our fast mode (the pipeline's default
  mining settings, ``TrainerConfig()``), with the speed-ups; all on linear towers, d = 1024,
  batch 512, F-HN, as the paper;
- whether the paper's loop and our exact mining pick identical negatives (same towers, same
  batches, fixed seed);
- the achieved FLOP/s of one exact global-mining step (bank refresh + mining) against a plain
  4096^2 ``tf.matmul`` in float32 and in bfloat16;
- eval rsum of exact vs fast mode after the same number of epochs, both trained with
  ``trainer.train.training.train`` (the function ``run_fn`` uses).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from benchmarks import harness  # noqa: E402
from benchmarks.paper_loop import Negatives, PaperLoop, PhaseSeconds, pick_negatives  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402
from trainer.inputs.data import SplitTables  # noqa: E402
from trainer.inputs.training_rows import TrainingRows  # noqa: E402
from trainer.model import towers
from trainer.train import training

BATCH = 512
DIM = 1024


def _side_flops(rows: int, input_dim: int, dim: int, batch: int, head: bool) -> int:
    """FLOP of mining B queries against one modality's rows (multiply-add = 2 FLOP).

    Encoding the rows costs 2 N D d and scoring 2 B d N; scoring through a linear head
    (``trainer.mining``) costs 2 B d D (queries) + 2 D^2 d (Gram) + 2 N (D s + (D - s)^2)
    (norms through the triangular factor's two blocks, s = D // 2) + 2 B D N.
    """
    if head:
        split = input_dim // 2
        norms = rows * (input_dim * split + (input_dim - split) ** 2)
        return 2 * (batch * dim * input_dim + input_dim ** 2 * dim + norms
                    + batch * input_dim * rows)
    return 2 * dim * rows * (input_dim + batch)


def mining_step_flops(num_images: int, num_captions: int, image_dim: int, text_dim: int,
                      dim: int, batch: int, ours: bool = False,
                      image_queries: int | None = None) -> int:
    """FLOP of one exact global-mining step with linear towers.

    The paper's loop re-encodes both modalities and scores B captions against the N_i images and
    B images against the N_c captions; ours (``ours=True``) scores a modality through its
    linear head when its input dimension is below d (the Trainer's rule), and searches the
    captions once per distinct batch image (``image_queries`` of them; default B).
    """
    image_queries = batch if image_queries is None else image_queries
    return (_side_flops(num_images, image_dim, dim, batch, ours and image_dim < dim)
            + _side_flops(num_captions, text_dim, dim, image_queries, ours and text_dim < dim))


def exact_config(epochs: int) -> TrainerConfig:
    """Exact mode: global mining, bank refreshed every step, the paper's towers and sizes."""
    return TrainerConfig(loss="fhn", mining="global", refresh_steps=1, image_tower="linear",
                         text_tower="linear", embedding_dim=DIM, batch_size=BATCH, epochs=epochs,
                         dropout=0.0, early_stopping_patience=None)


def fast_config(exact: TrainerConfig) -> TrainerConfig:
    """Exact mode with the pipeline's default mining settings (those of ``TrainerConfig()``)."""
    defaults = TrainerConfig()
    return dataclasses.replace(exact, mining=defaults.mining, refresh_steps=defaults.refresh_steps,
                               mining_chunk_size=defaults.mining_chunk_size)


def mining_label(config: TrainerConfig) -> str:
    """The config's mining mode and the settings it reads, for the printed report."""
    if config.mining != "global":
        return f"mining={config.mining}"
    return (f"mining=global refresh_steps={config.refresh_steps} "
            f"chunk={config.mining_chunk_size} ({config.mining_mode})")


def make_trainer(config: TrainerConfig, image_tower: keras.Model, text_tower: keras.Model,
                 train: SplitTables, steps_per_epoch: int) -> training.PairTrainer:
    """The Trainer's own step over ``train``, as ``trainer.train.training.train`` builds it."""
    rows = TrainingRows.for_training(config, image_tower, text_tower, train)
    return training.PairTrainer(config, rows, steps_per_epoch)


def build_towers(config: TrainerConfig, train: SplitTables):
    """Seeded towers, so that every mode starts from the same weights."""
    keras.utils.set_random_seed(config.seed)
    caption_dim = next(iter(train.text.values())).shape[-1]
    return towers.build_towers(config, 0, train.image_features.shape[-1], caption_dim)


def epoch_batches(num_captions: int, batch: int, seed: int) -> list[np.ndarray]:
    """One epoch of caption-row batches [batch] in a seeded shuffle (remainder dropped)."""
    order = np.random.default_rng(seed).permutation(num_captions)
    return [order[i:i + batch] for i in range(0, num_captions - batch + 1, batch)]


def paper_stepper(paper: PaperLoop, batches: list[np.ndarray]) -> Callable[[], object]:
    """One call = one step of the paper's loop on the next batch (cycling)."""
    batches = itertools.cycle(batches)
    return lambda: paper.train_step(next(batches))


def our_stepper(trainer: training.PairTrainer, batches: list[np.ndarray]
                ) -> tuple[Callable[[], None], int]:
    """One call = one bank-refresh cycle of our training: ``(step function, steps per call)``.

    In bank mode a call runs ``refresh_steps`` steps (the first refreshes the bank), so that the
    refresh cost is in the time; otherwise a call is one step.
    """
    batches = itertools.cycle(batches)
    steps = trainer.config.refresh_steps if trainer.config.mining_mode == "bank" else 1

    def cycle() -> None:
        for _ in range(steps):
            float(trainer.train_step(tf.constant(next(batches)))["loss"])

    return cycle, steps


def our_negatives(trainer: training.PairTrainer, caption_index: np.ndarray) -> Negatives:
    """Our exact global mining of a batch (``GlobalMiner.mine_captions``, as a step mines)."""
    neg_image, neg_text = trainer.strategy.miner.mine_captions(tf.constant(caption_index))
    is_pair = tf.equal(neg_image, tf.gather(trainer.rows.text_image_index, neg_text))
    return Negatives(neg_image.numpy(), neg_text.numpy(), is_pair.numpy())


def compare_negatives(paper: PaperLoop, trainer: training.PairTrainer,
                      batches: list[np.ndarray]) -> dict[str, float]:
    """Negatives of the paper's loop vs ours on the same towers and batches.

    Returns:
        ``queries`` (2 per pair: caption->image and image->caption), ``identical`` (how many
        negatives agree), ``pair_flags_identical`` and ``max_gap`` (largest score difference
        between the two picks where they disagree; 0 when all agree).

    """
    totals = {"queries": 0, "identical": 0, "pair_flags_identical": 0, "max_gap": 0.0}
    for caption_index in batches:
        to_images, to_captions = (s.numpy() for s in paper.scores(tf.constant(caption_index)))
        batch_ids = [paper.ids.caption_image_ids[row] for row in caption_index]
        theirs = pick_negatives(to_images, to_captions, batch_ids, paper.ids)
        ours = our_negatives(trainer, caption_index)
        rows = np.arange(len(caption_index))
        for scores, a, b in ((to_images, theirs.image_index, ours.image_index),
                             (to_captions, theirs.text_index, ours.text_index)):
            totals["identical"] += int(np.sum(a == b))
            gap = np.abs(scores[rows, a] - scores[rows, b])
            totals["max_gap"] = max(totals["max_gap"], float(np.max(gap, initial=0.0)))
        totals["queries"] += 2 * len(caption_index)
        totals["pair_flags_identical"] += int(np.sum(theirs.is_pair == ours.is_pair))
    return totals


def mining_gflops(trainer: training.PairTrainer, caption_index: np.ndarray, flops: int,
                  repeats: int) -> dict[str, float]:
    """GFLOP/s of one exact mining step and of plain 4096^2 matmuls, measured interleaved."""
    index = tf.constant(caption_index)
    mine = trainer.strategy.miner.mine_captions
    steps = {"mine": (lambda: mine(index)[0].numpy(), flops)}
    for dtype in (tf.float32, tf.bfloat16):
        steps[f"matmul_{dtype.name}"] = harness.matmul_step(dtype)
    medians = harness.interleaved_medians({name: fn for name, (fn, _) in steps.items()}, repeats)
    gflops = {name: steps[name][1] / medians[name] / 1e9 for name in steps}
    return {"step_s": medians["mine"], "gflops": gflops.pop("mine"), "matmul_gflops": {
        name.removeprefix("matmul_"): value for name, value in gflops.items()}}


def train_modes(configs: dict[str, TrainerConfig], train: SplitTables, eval_split: SplitTables,
                max_steps: int | None) -> dict[str, training.TrainResult]:
    """Trains each mode from the same initial towers with ``trainer.train.training.train``."""
    results = {}
    for name, config in configs.items():
        image_tower, text_tower = build_towers(config, train)
        with tempfile.TemporaryDirectory() as work_dir:
            results[name] = training.train(config, (image_tower, text_tower),
                                           training.Splits(train, eval_split), work_dir,
                                           max_steps=max_steps, verbose=0)
    return results


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of each (< ~1 min)")
    parser.add_argument("--data", help="Flickr8k folder (default ../shared/data/flickr8k)")
    parser.add_argument("--epochs", type=int, help="epochs of the rsum comparison (default 2)")
    parser.add_argument("--steps", type=int, help="timed rounds (one step of each loop per "
                        "round), extrapolated to seconds per epoch (default 30)")
    parser.add_argument("--check-batches", type=int, help="batches compared for identical "
                        "negatives (default 2)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    quick = {"epochs": 1, "steps": 3, "check_batches": 1}
    full = {"epochs": 2, "steps": 30, "check_batches": 2}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _time_modes(args, train: SplitTables, configs: dict[str, TrainerConfig],
                batches: list[np.ndarray], steps_per_epoch: int) -> tuple[dict, PaperLoop]:
    """Seconds per epoch of the paper's loop and of each of our modes, measured interleaved.

    Every round runs one step (ours: one refresh cycle) of each, in turn, so all see the same
    machine load; seconds per step = median over the rounds, times the steps of an epoch.
    """
    paper = PaperLoop(*build_towers(configs["exact"], train), train)
    steppers, steps = {"paper": paper_stepper(paper, batches)}, {"paper": 1}
    for name, config in configs.items():
        trainer = make_trainer(config, *build_towers(config, train), train, steps_per_epoch)
        steppers[name], steps[name] = our_stepper(trainer, batches)
    for step in steppers.values():  # warm-up: traces the graphs
        step()
    paper.seconds = PhaseSeconds()
    medians = harness.interleaved_medians(steppers, args.steps, warmup=0)
    seconds = {name: medians[name] / steps[name] * steps_per_epoch for name in steppers}
    phases = ", ".join(f"{name} {value:.3f} s" for name, value in paper.seconds.per_step().items())
    print(f"paper loop: {seconds['paper']:.1f} s/epoch ({args.steps} rounds interleaved; mean "
          f"per step: {phases})", flush=True)
    for name, config in configs.items():
        print(f"ours {name} ({mining_label(config)}): {seconds[name]:.1f} s/epoch, speed-up "
              f"{seconds['paper'] / seconds[name]:.2f}x", flush=True)
    return seconds, paper


def _efficiency(args, train: SplitTables, paper: PaperLoop, config: TrainerConfig,
                batches: list[np.ndarray], steps_per_epoch: int) -> dict:
    """Identical-negatives check and mining FLOP/s vs plain matmul, on the paper's towers."""
    trainer = make_trainer(config, paper.image_tower, paper.text_tower, train, steps_per_epoch)
    same = compare_negatives(paper, trainer, batches[:args.check_batches])
    print(f"negatives identical: {same['identical']}/{same['queries']}, pair flags "
          f"{same['pair_flags_identical']}/{same['queries'] // 2}, max score gap of "
          f"disagreements {same['max_gap']:.2g}", flush=True)
    shape = (len(train.image_features), train.num_captions, train.image_features.shape[-1],
             next(iter(train.text.values())).shape[-1], DIM, BATCH)
    distinct = len(np.unique(train.text_image_index[batches[0]]))
    paper_flops = mining_step_flops(*shape)
    flops = mining_step_flops(*shape, ours=True, image_queries=distinct)
    step = mining_gflops(trainer, batches[0], flops, repeats=3 if args.quick else 7)
    step["paper_gflop"], roof = paper_flops / 1e9, step.pop("matmul_gflops")
    print(f"mining step: {flops / 1e9:.1f} GFLOP executed ({distinct} distinct images of "
          f"{BATCH}; the paper's loop: {paper_flops / 1e9:.1f}) in {step['step_s']:.3f} s = "
          f"{step['gflops']:.0f} GFLOP/s; "
          f"plain 4096^2 matmul (interleaved): float32 {roof['float32']:.0f}, bfloat16 "
          f"{roof['bfloat16']:.0f} GFLOP/s", flush=True)
    return {"negatives": same, "mining": {**step, "gflop": flops / 1e9}, "matmul_gflops": roof}


def _rsum(args, train: SplitTables, eval_split: SplitTables,
          configs: dict[str, TrainerConfig]) -> dict:
    """Eval rsum of each mode after ``args.epochs`` epochs (quick: 5 steps)."""
    max_steps = 5 if args.quick else None
    results = train_modes(configs, train, eval_split, max_steps)
    summary = {}
    for name, result in results.items():
        last = result.history[-1]["rsum"]
        summary[name] = {"rsum_last": last, "rsum_best": result.best_metrics["rsum"],
                         "epoch_seconds": result.epoch_seconds}
        print(f"{name}: eval rsum after {len(result.history)} epoch(s) {last:.1f} (best "
              f"{summary[name]['rsum_best']:.1f}); train() epoch seconds "
              f"{[round(s, 1) for s in result.epoch_seconds]}", flush=True)
    return summary


def _print_summary(report: dict) -> None:
    seconds, mining, roof = report["seconds_per_epoch"], report["mining"], report["matmul_gflops"]
    same, rsum = report["negatives"], report["rsum"]
    print("== summary: bench_vs_paper (Flickr8k, linear towers, d=1024, batch 512, F-HN) ==")
    print(harness.machine_line())
    print(f"paper loop {seconds['paper']:.1f} s/epoch | exact {seconds['exact']:.1f} s/epoch "
          f"({seconds['paper'] / seconds['exact']:.2f}x, target >= 4x) | fast "
          f"{seconds['fast']:.1f} s/epoch ({seconds['paper'] / seconds['fast']:.1f}x, "
          "target >= 20x)")
    phases = report["paper_phases_per_step"]
    print("paper step phases: " + ", ".join(f"{k} {v:.3f} s" for k, v in phases.items()))
    print(f"fast mode = {report['fast_mode']}")
    print(f"identical negatives: {same['identical']}/{same['queries']}")
    print(f"mining step {mining['gflops']:.0f} GFLOP/s = "
          f"{mining['gflops'] / roof['float32']:.0%} of float32 matmul {roof['float32']:.0f} "
          f"(target >= 60%); bfloat16 matmul {roof['bfloat16']:.0f} GFLOP/s")
    print(f"eval rsum after {report['epochs']} epoch(s): exact {rsum['exact']['rsum_last']:.1f}, "
          f"fast {rsum['fast']['rsum_last']:.1f} (fast - exact = "
          f"{rsum['fast']['rsum_last'] - rsum['exact']['rsum_last']:+.1f}, target >= -2)")


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    train, eval_split = harness.flickr8k_tables(args.data)
    configs = {"exact": exact_config(args.epochs)}
    configs["fast"] = fast_config(configs["exact"])
    steps_per_epoch = train.num_captions // BATCH
    batches = [batch for seed in (0, 1) for batch in
               epoch_batches(train.num_captions, BATCH, configs["exact"].seed + seed)]
    seconds, paper = _time_modes(args, train, configs, batches, steps_per_epoch)
    report = {"seconds_per_epoch": seconds, "epochs": args.epochs,
              "fast_mode": mining_label(configs["fast"]), "steps_per_epoch": steps_per_epoch,
              "paper_phases_per_step": paper.seconds.per_step(),
              **_efficiency(args, train, paper, configs["exact"], batches, steps_per_epoch),
              "rsum": _rsum(args, train, eval_split, configs)}
    _print_summary(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()
