"""``python -m pipeline {run,retrain,compile,search}``: the command line.

Help and ``search`` stay fast: nothing here imports TFX until a subcommand that needs it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from collections.abc import Sequence

from pipeline import config as config_lib


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML/JSON file of PipelineConfig fields")
    parser.add_argument(
        "--data",
        help="dataset folder (layout is detected); default: ../shared/data/flickr8k if present, "
        "else a generated synthetic dataset",
    )
    parser.add_argument("--images", help="folder of images to featurize in front of ExampleGen")
    parser.add_argument(
        "--pipeline-root", help="where TFX writes artifacts (default runs/tfx_root)"
    )
    parser.add_argument("--serving-dir", help="TF Serving base directory (default runs/serving)")
    parser.add_argument("--model-name", help="TF Serving model name (default xmodal)")
    parser.add_argument("--loss", choices=["sh", "hn", "fhn", "mhn"], help="triplet loss kind")
    parser.add_argument("--mining", choices=["in_batch", "global"], help="hard-negative mining")
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument(
        "--beam-args",
        help="extra Beam arguments as one string, e.g. "
        "'--direct_running_mode=multi_processing --direct_num_workers=2'",
    )
    parser.add_argument("--no-cache", action="store_true", help="re-run every component")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. trainer.margin=0.2 or eval.rsum_lower_bound=50",
    )


def build_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
    """The PipelineConfig of a command line: file, then named flags, then --set overrides."""
    cfg = config_lib.load(args.config) if args.config else config_lib.PipelineConfig()
    overrides = []
    for flag, key in (
        ("data", "data_dir"),
        ("images", "images_dir"),
        ("pipeline_root", "pipeline_root"),
        ("serving_dir", "serving_dir"),
        ("model_name", "model_name"),
        ("loss", "trainer.loss"),
        ("mining", "trainer.mining"),
        ("epochs", "trainer.epochs"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "no_cache", False):
        overrides.append("enable_cache=false")
    cfg = config_lib.apply_overrides(cfg, overrides + list(args.set))
    if getattr(args, "beam_args", None):
        cfg = config_lib.from_dict(
            {**dataclasses.asdict(cfg), "beam_args": [*cfg.beam_args, *shlex.split(args.beam_args)]}
        )
    return cfg


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pipeline``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner, Beam)")
    _add_config_args(run)
    retrain = sub.add_parser(
        "retrain",
        help="scheduled retraining on the newest data span (safe to run from cron)",
    )
    _add_config_args(retrain)
    compile_ = sub.add_parser("compile", help="write a Kubeflow V2 / Vertex AI pipeline spec")
    _add_config_args(compile_)
    compile_.add_argument("--target", choices=["vertex", "kubeflow"], default="vertex")
    compile_.add_argument("--output", default="xmodal_pipeline.json", help="spec file to write")
    compile_.add_argument("--image", help="container image with this project installed")
    compile_.add_argument("--project", help="GCP project (Dataflow)")
    compile_.add_argument("--region", default="us-central1", help="GCP region (Dataflow)")
    compile_.add_argument("--temp-location", help="gs:// temp location for Dataflow")
    compile_.add_argument(
        "--retraining",
        action="store_true",
        help="compile the scheduled-retraining variant (warm start, Transform analyzer cache)",
    )
    search = sub.add_parser("search", help="query a pushed model's gallery")
    search.add_argument("query", help="caption text, or an image id with --image-query")
    search.add_argument("--serving-dir", default="runs/serving")
    search.add_argument("--model-name", default="xmodal")
    search.add_argument("-k", type=int, default=5, help="results to return")
    search.add_argument(
        "--mode",
        choices=["text2image", "image2image", "text2text"],
        default="text2image",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = make_parser().parse_args(argv)
    if args.command == "search":
        from serving import search_cli

        forwarded = [
            args.query,
            "--serving-dir",
            args.serving_dir,
            "--model-name",
            args.model_name,
            "-k",
            str(args.k),
            "--mode",
            args.mode,
        ]
        return search_cli.main(forwarded)
    cfg = build_config(args)
    if args.command == "compile":
        from pipeline import vertex_runner

        return vertex_runner.main(cfg, args)
    from pipeline import run

    if args.command == "retrain":
        return run.retrain(cfg)
    return run.run(cfg)
