"""Compiles the pipeline to a Kubeflow Pipelines V2 spec (Vertex AI Pipelines or KFP 2.x).

Every Beam-based component runs on Dataflow with the project's container image as the SDK worker
image, so Dataflow workers import this package exactly as the orchestrator's containers do.
TFX 1.16 no longer ships the KFP v1 ``KubeflowDagRunner``: ``--target kubeflow`` writes the same
KFP v2 IR, which Kubeflow Pipelines 2.x runs, without the Vertex-only Dataflow defaults.

Compiling needs no cloud access: it never reads or writes the pipeline root or any remote path
and creates no metadata store (the orchestrator brings its own); the only file written is the
spec. A local data folder is read to detect its layout; a remote one must be described by the
configuration's ``dataset`` section.

With ``trainer.machine_type`` (and optionally ``trainer.workers``, ``trainer.accelerator``) the
Trainer runs as a Vertex AI Training job through TFX's Vertex Trainer extension: a chief pool of
one machine and a worker pool of ``workers - 1``, all running the pipeline's image; Vertex gives
each its ``TF_CONFIG`` and ``trainer.train.distribute`` trains them as one cluster.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from pipeline import data as data_lib
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from trainer.config import TrainerConfig

DEFAULT_IMAGE = "gcr.io/YOUR_PROJECT/xmodal-retrieval:latest"


def dataflow_beam_args(
    *, project: str | None, region: str, temp_location: str | None, image: str
) -> list[str]:
    """Beam arguments that run a component's Beam jobs on Dataflow with our container."""
    args = [
        "--runner=DataflowRunner",
        f"--region={region}",
        "--experiments=use_runner_v2",
        f"--sdk_container_image={image}",
        "--sdk_location=container",
    ]
    if project:
        args.append(f"--project={project}")
    if temp_location:
        args.append(f"--temp_location={temp_location}")
    return args


def worker_pool_specs(trainer: TrainerConfig, image: str) -> list[dict[str, Any]]:
    """Vertex AI CustomJob pools: the chief (1 replica), then ``workers - 1`` workers if any."""
    machine: dict[str, Any] = {"machine_type": trainer.machine_type}
    if trainer.accelerator:
        kind, count = trainer.accelerator.split(":")
        machine.update(accelerator_type=kind, accelerator_count=int(count))
    return [{"machine_spec": machine, "replica_count": count,
             "container_spec": {"image_uri": image}}
            for count in (1, trainer.workers - 1) if count]


def vertex_training_job(trainer: Mapping[str, Any], *, image: str, project: str | None,
                        region: str) -> dict[str, Any] | None:
    """The Vertex Trainer extension's ``custom_config`` entries, or None without a machine type.

    Raises:
        ValueError: a machine type without ``project`` (the job is created in that project).

    """
    config = TrainerConfig.from_dict(trainer)
    if not config.machine_type:
        return None
    if not project:
        raise ValueError("trainer.machine_type runs the Trainer as a Vertex AI Training job: "
                         "pass --project")
    extension = tfx.extensions.google_cloud_ai_platform
    return {
        extension.ENABLE_VERTEX_KEY: True,
        extension.VERTEX_REGION_KEY: region,
        extension.TRAINING_ARGS_KEY: {
            "project": project,
            "worker_pool_specs": worker_pool_specs(config, image),
        },
    }


def compile_pipeline(
    config: PipelineConfig,
    *,
    target: str,
    output: str,
    image: str,
    beam_args: Sequence[str],
    retraining: bool = False,
    training_job: Mapping[str, Any] | None = None,
) -> str:
    """Writes the pipeline spec JSON for ``target`` ('vertex' or 'kubeflow'); returns its path."""
    resolved = data_lib.resolve(config, for_compile=True)
    pipeline = create_pipeline(
        config,
        resolved.spec,
        input_base=resolved.input_base,
        beam_pipeline_args=list(beam_args),
        images_fingerprint=resolved.images_fingerprint,
        retraining=retraining,
        metadata_connection_config=None,
        training_job=training_job,
    )
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            display_name=f"{config.pipeline_name} ({target})", default_image=image
        ),
        output_dir=os.path.dirname(os.path.abspath(output)),
        output_filename=os.path.basename(output),
    )
    runner.run(pipeline)
    return output


def main(config: PipelineConfig, args: argparse.Namespace) -> int:
    """``python -m pipeline compile``."""
    image = args.image or DEFAULT_IMAGE
    if args.target == "vertex":
        beam_args = dataflow_beam_args(
            project=args.project,
            region=args.region,
            temp_location=args.temp_location,
            image=image,
        )
    else:
        beam_args = list(config.beam_args)
    path = compile_pipeline(
        config,
        target=args.target,
        output=args.output,
        image=image,
        beam_args=beam_args,
        retraining=getattr(args, "retraining", False),
        training_job=vertex_training_job(config.trainer, image=image, project=args.project,
                                         region=args.region),
    )
    print(f"wrote {args.target} pipeline spec: {path} (image {image})")
    return 0
