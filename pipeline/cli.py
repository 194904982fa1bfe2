"""``python -m pipeline {run,retrain,compile,search,serve}``: the command line.

Help, ``search`` and configuration errors stay fast: the whole configuration is checked before
TFX or TensorFlow is imported, and a bad value is one line naming the file and dotted key (exit
code 2). A run prints progress, the summary and one line per error; the rest goes to its log.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TextIO

from pipeline import config as config_lib
from pipeline import console, preflight

EX_USAGE = 2


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
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. trainer.margin=0.2 or eval.rsum_lower_bound=50",
    )


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    _add_config_args(parser)
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show library warnings and full tracebacks on the terminal (default: in the TFX log)",
    )


def build_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
    """The PipelineConfig of a command line: file, then named flags, then --set overrides.

    Named flags are taken as given (a '#' in a folder, a model named ``yes``): only the values of
    ``--set`` are parsed, as YAML.
    """
    cfg = config_lib.load(args.config) if args.config else config_lib.PipelineConfig()
    flags = []
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
            flags.append((key, value))
    if getattr(args, "no_cache", False):
        flags.append(("enable_cache", False))
    cfg = config_lib.set_values(cfg, flags + config_lib.parse_overrides(args.set))
    if getattr(args, "beam_args", None):
        beam_args = [*cfg.beam_args, *shlex.split(args.beam_args)]
        cfg = config_lib.set_values(cfg, [("beam_args", beam_args)])
    return cfg


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pipeline`` (``search`` parses its own arguments)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner, Beam)",
                         allow_abbrev=False)
    _add_run_args(run)
    retrain = sub.add_parser(
        "retrain",
        help="scheduled retraining on the newest data span (safe to run from cron)",
        allow_abbrev=False,
    )
    _add_run_args(retrain)
    compile_ = sub.add_parser("compile", help="write a Kubeflow V2 / Vertex AI pipeline spec",
                              allow_abbrev=False)
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
    # Listed for the overview only: main() hands ``search ...`` to serving.search_cli, the one
    # definition of its arguments (``search --help`` shows them).
    sub.add_parser("search", help="query a pushed model's gallery (search --help for options)",
                   add_help=False)
    sub.add_parser("serve", help="the search page and JSON API (serve --help for options)",
                   add_help=False)
    sub.add_parser("index", help="embed a photo collection and publish its search index "
                   "(index --help for options)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from serving.web import cli as serve_cli  # FastAPI, uvicorn, TensorFlow; no TFX

        return serve_cli.main(argv[1:])
    if argv[:1] == ["index"]:
        from serving.collection.cli import index_main  # Beam and TensorFlow, no TFX

        return index_main(argv[1:])
    if argv[:1] == ["search"]:
        return _logged(console.search_log_path(), lambda terminal: _search(argv[1:], terminal))
    args = make_parser().parse_args(argv)
    try:
        cfg = build_config(args)
        if args.command in ("run", "retrain"):
            preflight.check_run(cfg)  # the folders it writes, before the lock and the log
    except (config_lib.ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EX_USAGE
    if args.command == "compile":
        from pipeline import vertex_runner

        return vertex_runner.main(cfg, args)
    if args.verbose:
        return _run_command(args.command, cfg, log_path=None)
    log_path = console.new_log_path(cfg.pipeline_root)
    return _logged(log_path, lambda _: _run_command(args.command, cfg, log_path=log_path))


def _logged(log_path: str, command: Callable[[TextIO], int]) -> int:
    """Runs ``command(terminal)`` with stderr sent to ``log_path``; returns its exit code."""
    with console.stderr_to_log(log_path) as terminal:
        # The one place that turns any failure into one terminal line: the full traceback goes
        # to the log, whose path the line names.
        try:
            return command(terminal)
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            print(f"error: {console.error_line(err)} (details: {log_path})", file=terminal)
            return 1


def _search(argv: list[str], terminal: TextIO) -> int:
    from serving import search_cli  # TensorFlow only, no TFX; imported once stderr is logged

    return search_cli.main(argv, terminal=terminal)


def _run_command(command: str, cfg: config_lib.PipelineConfig, log_path: str | None) -> int:
    from pipeline import run  # lock first: TFX is imported only once the lock is held

    if command == "retrain":
        return run.retrain(cfg, log_path=log_path)
    return run.run(cfg, log_path=log_path)
