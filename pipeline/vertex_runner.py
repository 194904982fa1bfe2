"""Compiles the pipeline to a Kubeflow Pipelines V2 spec (Vertex AI Pipelines or KFP 2.x).

Every Beam-based component runs on Dataflow with the project's container image as the SDK worker
image, so Dataflow workers import this package exactly as the orchestrator's containers do.
TFX 1.16 no longer ships the KFP v1 ``KubeflowDagRunner``: ``--target kubeflow`` writes the same
KFP v2 IR, which Kubeflow Pipelines 2.x runs, without the Vertex-only Dataflow defaults.

Compiling needs no cloud access: it never reads or writes the pipeline root or any remote path
and creates no metadata store (the orchestrator brings its own); the only file written is the
spec. A local data folder is read to detect its layout; a remote one must be described by the
configuration's ``dataset`` section.

With ``training_job.machine_type`` (and optionally ``training_job.workers``,
``training_job.accelerator``) the
Trainer runs as a Vertex AI Training job through TFX's Vertex Trainer extension: a chief pool of
one machine and a worker pool of ``workers - 1``, all running the pipeline's image; Vertex gives
each its ``TF_CONFIG`` and ``trainer.train.distribute`` trains them as one cluster.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from pipeline import data as data_lib
from pipeline.config import PipelineConfig, TrainingJob
from pipeline.pipeline import Orchestration, create_pipeline

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


def worker_pool_specs(job: TrainingJob, image: str) -> list[dict[str, Any]]:
    """Vertex AI CustomJob pools: the chief (1 replica), then ``workers - 1`` workers if any."""
    machine: dict[str, Any] = {"machine_type": job.machine_type}
    if job.accelerator:
        kind, count = job.accelerator.split(":")
        machine.update(accelerator_type=kind, accelerator_count=int(count))
    return [{"machine_spec": machine, "replica_count": count,
             "container_spec": {"image_uri": image}}
            for count in (1, job.workers - 1) if count]


def vertex_training_job(job: TrainingJob, *, image: str, project: str | None,
                        region: str) -> dict[str, Any] | None:
    """The Vertex Trainer extension's ``custom_config`` entries, or None without a machine type.

    Raises:
        ValueError: a machine type without ``project`` (the job is created in that project).

    """
    if not job.machine_type:
        return None
    if not project:
        raise ValueError("training_job.machine_type runs the Trainer as a Vertex AI Training job: "
                         "pass --project")
    extension = tfx.extensions.google_cloud_ai_platform
    return {
        extension.ENABLE_VERTEX_KEY: True,
        extension.VERTEX_REGION_KEY: region,
        extension.TRAINING_ARGS_KEY: {
            "project": project,
            "worker_pool_specs": worker_pool_specs(job, image),
        },
    }


def compile_pipeline(config: PipelineConfig, orchestration: Orchestration, *, target: str,
                     output: str, image: str) -> str:
    """Writes the pipeline spec JSON for ``target`` ('vertex' or 'kubeflow'); returns its path.

    ``orchestration`` brings the Beam arguments, the retraining flag and the Vertex training
    job; it has no metadata connection (the orchestrator brings its own store).
    """
    resolved = data_lib.resolve(config, for_compile=True)
    pipeline = create_pipeline(config, resolved, orchestration)
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
    orchestration = Orchestration(
        beam_pipeline_args=beam_args, retraining=getattr(args, "retraining", False),
        training_job=vertex_training_job(config.training_job, image=image, project=args.project,
                                         region=args.region))
    path = compile_pipeline(config, orchestration, target=args.target, output=args.output,
                            image=image)
    print(f"wrote {args.target} pipeline spec: {path} (image {image})")
    return 0
