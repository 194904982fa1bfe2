"""The paper's comparison: SH / HN / M-HN / F-HN × mining × seeds, chosen on dev, scored on test.

Every run trains with ``trainer.train.training.train`` (the function ``run_fn`` trains with), which
keeps the towers of the best rsum on DATA's dev split; those towers are then scored once on the
test split (``--test-data``; default DATA's dev split): the six recalls, rsum, median ranks and
the four nDCG@25 with ROUGE-L relevance (``trainer.metrics``, ``serving.rouge``), plus nDCG@25
and R@K against human judgments where the test directory has Flickr8k's judgment files
(``benchmarks.annotations``). Nothing of the test split takes part in training or selection.
Prints mean ± std over seeds and F-HN − HN (per-seed paired differences, ``benchmarks.seed_stats``)
as Markdown; ``--output-json`` keeps every run.

    python -m benchmarks.paper_table --data ../shared/data/flickr8k --seeds 3
    python -m benchmarks.paper_table --data ../shared/data/flickr8k --seeds 3 --text-input minilm

``--text-input minilm`` trains the pipeline's default towers (raw captions in, MiniLM's top layer
fine-tuned, the pipeline's precision) instead of a linear map of the precomputed caption features.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from benchmarks import annotations, harness, paper_data, seed_stats  # noqa: E402
from trainer import features, metrics
from trainer.config import MINING_KINDS, TrainerConfig  # noqa: E402
from trainer.model import towers
from trainer.train import evaluation, training

LOSSES = ("sh", "hn", "mhn", "fhn")
# --text-input -> the text tower: a linear map of the precomputed MiniLM caption features (the
# paper's setting), a masked mean of word tokens, or the pipeline's default model (raw captions
# through WordPiece and MiniLM with its top layer fine-tuned: the tower users deploy).
TEXT_TOWERS = {"features": "linear", "tokens": "mean", "minilm": "minilm"}


@dataclasses.dataclass(frozen=True)
class TestSet:
    """What a run is scored on: the test tables, their ROUGE-L relevance, human judgments.

    Attributes:
        splits: train / dev / test tables.
        relevance: [N_txt, N_img] ROUGE-L relevance of the test split.
        judged: judgments file name -> (relevance, relevant) matrices of the test split.

    """

    splits: paper_data.Splits
    relevance: np.ndarray
    judged: dict[str, tuple[np.ndarray, np.ndarray]]


def load_test_set(data_dir: pathlib.Path, test_dir: pathlib.Path | None, work_dir: pathlib.Path,
                  text_keys: tuple[str, ...], transform_config: dict) -> TestSet:
    """Reads the splits, computes the test split's ROUGE-L relevance and reads its judgments."""
    splits = paper_data.load_splits(data_dir, test_dir, work_dir, text_keys, transform_config)
    test = splits.test
    relevance = paper_data.rouge_relevance(test, splits.test_captions)
    judged = {}
    if test_dir is not None:
        image_ids = [name.decode() for name in test.image_ids]
        caption_ids = [name.decode() for name in test.caption_ids]
        for name, judgments in annotations.read_judgments(test_dir).items():
            judged[name] = annotations.judged_relevance(judgments, image_ids, caption_ids)
            print(f"{name}: {len(judgments)} judged pairs", flush=True)
    return TestSet(splits, relevance, judged)


def _build(config: TrainerConfig, splits: paper_data.Splits):
    caption = splits.train.text.get(features.CAPTION_FEATURES_XF)
    return towers.build_towers(config, splits.vocab_size, splits.train.image_features.shape[-1],
                               None if caption is None else caption.shape[-1])


def score(image_tower, text_tower, test_set: TestSet, batch: int) -> dict:
    """Test metrics of trained towers: ``{"test": {...}, "judgments": {file: {...}}}``."""
    test = test_set.splits.test
    image = evaluation.encode_rows(image_tower, test.image_features, len(test.image_features),
                                   batch)
    text = evaluation.encode_rows(text_tower, test.text, test.num_captions, batch)
    text_image_ids = test.image_ids[test.text_image_index]
    values = metrics.retrieval_metrics(image, test.image_ids, text, text_image_ids)
    values.update(metrics.semantic_ndcg(image, test.image_ids, text, text_image_ids,
                                        test_set.relevance))
    judged = {name: annotations.judgment_metrics(image, text, *matrices)
              for name, matrices in test_set.judged.items()}
    return {"test": values, "judgments": judged}


def run_one(config: TrainerConfig, test_set: TestSet) -> dict:
    """Trains one (loss, mining, seed) with ``training.train`` on train, selecting on dev.

    Returns:
        The run dict (``benchmarks.seed_stats``): the setting, the selected epoch, the dev rsum
        of every epoch, the training seconds and the test metrics of the selected towers.

    """
    keras.backend.clear_session()
    training.set_seeds(config.seed)
    image_tower, text_tower = _build(config, test_set.splits)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="paper_table_") as work_dir:
        result = training.train(config, (image_tower, text_tower),
                                training.Splits(test_set.splits.train, test_set.splits.dev),
                                work_dir, verbose=0)
    seconds = time.perf_counter() - start
    return {"loss": config.loss, "mining": config.mining, "seed": config.seed,
            "best_epoch": result.best_epoch, "train_seconds": seconds,
            "dev_rsum": [epoch["rsum"] for epoch in result.history],
            **score(image_tower, text_tower, test_set, config.eval_batch_size)}


def settings(losses, minings, seeds: int) -> list[tuple[str, str, int]]:
    """(loss, mining, seed) to train; SH has no mining, so it runs under the first one only."""
    return [(loss, mining, seed) for mining in minings for loss in losses
            if loss != "sh" or mining == minings[0] for seed in range(seeds)]


def tables(runs: list[dict], section: str = "test") -> str:
    """Markdown: mean ± std per loss/mining, then F-HN − HN per mining."""
    rows = {name: group["metrics"]
            for name, group in seed_stats.summarize(runs, section).items()}
    signed = []
    for mining in dict.fromkeys(run["mining"] for run in runs):
        difference = seed_stats.paired_difference(runs, "fhn", "hn", mining, section)
        if difference is not None:
            rows[f"fhn − hn / {mining}"] = difference
            signed.append(f"fhn − hn / {mining}")
    columns = seed_stats.COLUMNS if section == "test" else annotations.COLUMNS
    return seed_stats.markdown_table(rows, columns=columns, signed=signed)


def matmul_gflops() -> float:
    """GFLOP/s of a plain float32 4096² matmul now (how fast the shared host runs)."""
    step, flops = harness.matmul_step(tf.float32)
    return flops / harness.median_seconds(step, repeats=5) / 1e9


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=None,
                        help="DATA: train + dev (default $FLICKR8K_DIR or ../shared/data/flickr8k)")
    parser.add_argument("--test-data", type=pathlib.Path, default=None,
                        help="test directory (default: DATA's dev split)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument("--epochs", type=int, default=TrainerConfig.epochs)
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES))
    parser.add_argument("--mining", nargs="+", choices=MINING_KINDS, default=["in_batch"])
    parser.add_argument("--text-input", choices=tuple(TEXT_TOWERS), default="features")
    parser.add_argument("--work-dir", type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir()) / "xmodal_paper_table")
    parser.add_argument("--output-json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    return args


def _finite(value):
    """JSON has no NaN: NaN -> None, recursively."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def base_configs(text_input: str, epochs: int) -> tuple[dict, TrainerConfig]:
    """The Transform's ``custom_config`` and the Trainer's settings of one ``--text-input``.

    Those of ``python -m pipeline run --set trainer.text_tower=T`` (``pipeline.defaults.
    component_configs``), ``epochs`` aside: ``minilm`` is the pipeline's default model, and a
    token or features tower gets no WordPiece ids.

    Raises:
        ConfigError: ``minilm`` without the pretrained MiniLM package.

    """
    from pipeline import defaults

    configs = defaults.component_configs({}, {"text_tower": TEXT_TOWERS[text_input]})
    return (defaults.custom_config(configs.transform),
            dataclasses.replace(configs.trainer, epochs=epochs))


def run_table(args: argparse.Namespace) -> dict:
    """Trains every setting and returns the report (runs, summaries, Markdown, host figures)."""
    start, gflops_before = time.perf_counter(), matmul_gflops()
    transform_config, base = base_configs(args.text_input, args.epochs)
    data_dir = harness.flickr8k_dir(args.data)
    test_set = load_test_set(data_dir, args.test_data, args.work_dir, towers.text_inputs(base),
                             transform_config)
    runs = []
    for loss, mining, seed in settings(args.losses, args.mining, args.seeds):
        run = run_one(dataclasses.replace(base, loss=loss, mining=mining, seed=seed), test_set)
        runs.append(run)
        print(f"{loss}/{mining} seed {seed}: epoch {run['best_epoch']}, test rsum "
              f"{run['test']['rsum']:.1f}, {run['train_seconds']:.0f} s", flush=True)
    sizes = {name: [len(split.image_features), split.num_captions] for name, split in
             zip(("train", "dev", "test"), (test_set.splits.train, test_set.splits.dev,
                                            test_set.splits.test), strict=True)}
    report = {"command": vars(args), "splits": sizes, "runs": runs,
              "summary": seed_stats.summarize(runs), "markdown": {"test": tables(runs)}}
    for name in test_set.judged:
        report["markdown"][name] = tables(runs, f"judgments/{name}")
    report["host"] = {"machine": harness.machine_line(), "wall_seconds":
                      time.perf_counter() - start, "matmul_gflops_float32":
                      [gflops_before, matmul_gflops()]}
    return report


def main(argv=None) -> None:
    args = _parse_args(argv)
    report = run_table(args)
    for name, table in report["markdown"].items():
        print(f"\n{name}:\n{table}")
    host = report["host"]
    print(f"\n{host['machine']}; wall {host['wall_seconds'] / 60:.1f} min; float32 matmul "
          f"{host['matmul_gflops_float32'][0]:.0f} -> {host['matmul_gflops_float32'][1]:.0f} "
          f"GFLOP/s (start -> end)")
    if args.output_json:
        report["command"] = {key: str(value) for key, value in report["command"].items()}
        args.output_json.write_text(json.dumps(_finite(report), indent=1))


if __name__ == "__main__":
    main()
