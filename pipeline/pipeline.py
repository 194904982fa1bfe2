"""create_pipeline(): the one definition of the TFX pipeline that every runner uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

# The modules themselves, not ``tfx.v1``: importing that package imports every extension too
# (the Vertex AI client alone takes about 8 s), on every run and every CLI call.
from tfx.components import ExampleValidator, StatisticsGen, Trainer, Transform
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.canned_resolver_functions import latest_created
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration import metadata
from tfx.orchestration.pipeline import Pipeline
from tfx.types import Channel, standard_artifacts

from components.eval_report.thumbnails import find_images_dir
from pipeline.config import PipelineConfig
from pipeline.data import ResolvedData
from pipeline.defaults import custom_config
from serving.savedmodel import CUSTOM_OP_MODULES

# Module paths (the project is an installed package; no module_file wheels).
PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
RUN_FN = "trainer.task.run_fn"


@dataclasses.dataclass(frozen=True)
class Orchestration:
    """How a runner runs the pipeline: what ``create_pipeline`` needs beyond the configuration.

    Attributes:
      beam_pipeline_args: Beam arguments (None: ``config.beam_args``); ``with_beam_plugins``
        adds the custom-op modules to them.
      retraining: scheduled retraining: warm-start the Trainer from the baseline model and
        give Transform the latest analyzer cache.
      metadata_connection_config: ML Metadata connection (``local_metadata_config`` for the
        local runner); None for orchestrators that bring their own store (Vertex, Kubeflow).
        It also picks the baseline resolver (``baseline_resolver``).
      training_job: the Vertex AI Trainer extension's ``custom_config`` entries (region, job
        spec; ``pipeline.vertex_runner.vertex_training_job``): the Trainer then runs as a
        Vertex AI Training job; None trains in the component's own container.

    """

    beam_pipeline_args: Sequence[str] | None = None
    retraining: bool = False
    metadata_connection_config: Any | None = None
    training_job: Mapping[str, Any] | None = None


def create_pipeline(config: PipelineConfig, data: ResolvedData,
                    orchestration: Orchestration | None = None) -> Pipeline:
    """Builds ExampleGen → validation → Transform → Trainer → Evaluator → Pusher.

    Building it reads and writes nothing (no pipeline root, no metadata store), so that a
    pipeline can be compiled for a cloud runner on a machine without cloud access.

    Args:
      config: the validated pipeline configuration; its ``transform`` and ``trainer`` are the
        components' settings as they are (``pipeline.defaults.custom_config``).
      data: the resolved dataset (``pipeline.data.resolve``): the caption ExampleGen's
        ``DatasetSpec`` (with ``config.images_dir`` its image feature files stay empty, they come
        from the featurizer), the input base and the images' fingerprint (the featurizer's exec
        property, so that new images bust its cache; '' computes it from the folder).
      orchestration: the runner's settings (None: a plain local build with default Beam args).

    Returns:
      A ``tfx.dsl.Pipeline``.

    """
    run = orchestration or Orchestration()
    nodes = _data_nodes(config, data.spec, data.input_base, data.images_fingerprint)
    baseline = baseline_resolver(config, local=run.metadata_connection_config is not None)
    model = _model_nodes(config, nodes, baseline, run,
                         find_images_dir(config.images_dir, data.input_base))
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=list(nodes.values()) + list(model.values()),
        enable_cache=config.enable_cache,
        metadata_connection_config=run.metadata_connection_config,
        beam_pipeline_args=with_beam_plugins(run.beam_pipeline_args or config.beam_args),
    )


def local_metadata_config(config: PipelineConfig) -> Any:
    """The SQLite ML Metadata connection at ``config.metadata_db`` (creates its folder)."""
    return metadata.sqlite_metadata_connection_config(config.metadata_db)


def with_beam_plugins(beam_args: Sequence[str]) -> list[str]:
    """``beam_args`` plus ``--beam_plugins=<module>`` for each module that registers custom ops.

    Beam workers import plugin modules when they start, before they run any of our code; on a
    distributed runner (Dataflow, Flink) that is what registers the TF-Text ops of a WordPiece
    (``minilm``) graph for Transform and for the Evaluator. It is added for every pipeline, not
    only ``text_tower=minilm`` ones: the Evaluator also loads the baseline model, which
    can be a ``minilm`` model after the configuration switched back, and ``tensorflow_text`` is
    in the worker image anyway. Modules already named are not repeated.
    """
    args = list(beam_args)
    named = {arg.split("=", 1)[1] for arg in args
             if arg.startswith(("--beam_plugins=", "--beam_plugin="))}
    return args + [f"--beam_plugins={m}" for m in CUSTOM_OP_MODULES if m not in named]


def _data_nodes(config, dataset, input_base, images_fingerprint) -> dict:
    """ExampleGen (optionally fed by the image featurizer's artifact) and data validation."""
    from components.anomalies_gate import AnomaliesGate
    from components.caption_example_gen.component import make_caption_example_gen
    from components.caption_example_gen.schema_gen import CaptionSchemaGen

    nodes: dict[str, Any] = {}
    image_features = None
    if config.images_dir:
        from components.image_featurizer import config as featurizer
        from components.image_featurizer.component import ImageFeaturizer

        backbone = {featurizer.TF: featurizer.MOBILENET_V2_TF,
                    featurizer.TFLITE: featurizer.MOBILENET_V2_TFLITE}[config.images_backend]
        nodes["featurizer"] = ImageFeaturizer(
            images_dir=config.images_dir, images_fingerprint=images_fingerprint,
            backbone=backbone,
        ).with_id("ImageFeaturizer")
        image_features = nodes["featurizer"].outputs["image_features"]
    example_gen = make_caption_example_gen(input_base, dataset, image_features).with_id(
        "CaptionExampleGen"
    )
    nodes["example_gen"] = example_gen
    nodes["statistics_gen"] = StatisticsGen(examples=example_gen.outputs["examples"])
    nodes["schema_gen"] = CaptionSchemaGen(dataset).with_id("SchemaGen")
    nodes["example_validator"] = ExampleValidator(
        statistics=nodes["statistics_gen"].outputs["statistics"],
        schema=nodes["schema_gen"].outputs["schema"],
    )
    nodes["anomalies_gate"] = AnomaliesGate(
        anomalies=nodes["example_validator"].outputs["anomalies"]
    ).with_id("AnomaliesGate")
    return nodes


def baseline_resolver(config: PipelineConfig, *, local: bool) -> Any:
    """The Resolver node ``baseline_model``: the model the Evaluator compares candidates with.

    On the local runner it is the model last pushed whose version is still in the serving
    folder (``LatestPushedModelStrategy``), i.e. what is served: a model that was blessed but
    never pushed (the Pusher failed or was killed) is then evaluated again against the served
    model and pushed by the next run, instead of being compared with itself. KFP v2 (Vertex,
    Kubeflow) compiles only TFX's stock strategies, so there it is the latest blessed model.
    """
    from components.tf_serving_pusher.baseline import LatestPushedModelStrategy

    model = Channel(type=standard_artifacts.Model)
    if local:
        resolver = Resolver(
            strategy_class=LatestPushedModelStrategy,
            config={"serving_dir": config.serving_dir, "model_name": config.model_name},
            model=model,
            pushed_model=Channel(type=standard_artifacts.PushedModel),
        )
    else:
        resolver = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=model,
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        )
    return resolver.with_id("baseline_model")


def _model_nodes(config: PipelineConfig, data: dict, baseline: Any, run: Orchestration,
                 images_dir: str) -> dict:
    """Transform, Trainer, relevance + Evaluator + report, and the TF Serving pusher.

    ``baseline``: the ``baseline_resolver`` node; ``images_dir`` (or "") is where the report
    finds the images of its qualitative panel.
    """
    nodes = _training_nodes(config, data, baseline, run)
    nodes.update(_evaluation_nodes(config, data, nodes, images_dir))
    return nodes


def _vertex_trainer() -> type:
    """TFX's Vertex AI Trainer, imported only by a pipeline that trains on Vertex AI."""
    from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as VertexTrainer

    return VertexTrainer


def _training_nodes(config: PipelineConfig, data: dict, baseline: Any,
                    run: Orchestration) -> dict:
    """Transform, the baseline model (``baseline_resolver``), and the Trainer.

    Their ``custom_config`` are ``config.transform`` and ``config.trainer`` as they are (the
    fields that differ from the defaults), plus the Vertex training job's entries if any.
    """
    schema = data["schema_gen"].outputs["schema"]
    transform = Transform(
        examples=data["example_gen"].outputs["examples"],
        schema=schema,
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=custom_config(config.transform),
        # StatisticsGen and ExampleValidator already validate the raw examples (the anomalies
        # gate); Transform's own statistics would repeat that pass over the raw data and add a
        # post-transform pass over every WordPiece id and image-feature value that no component
        # reads.
        disable_statistics=True,
        # Retraining re-uses the analyzer cache of earlier Transform runs, so that a span that was
        # analyzed before is not re-analyzed. A plain run leaves it out: a cache produced by the
        # previous run would be a new input and defeat TFX's own caching of the whole component.
        analyzer_cache=(
            latest_created(Channel(type=standard_artifacts.TransformCache))
            if run.retraining
            else None
        ),
    )
    transform.add_upstream_node(data["anomalies_gate"])
    trainer = Trainer if run.training_job is None else _vertex_trainer()
    return {
        "transform": transform,
        "baseline_model": baseline,
        "trainer": trainer(
            run_fn=RUN_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema,
            base_model=baseline.outputs["model"] if run.retraining else None,
            custom_config={**custom_config(config.trainer), **(run.training_job or {})},
        ),
    }


def _evaluation_nodes(config: PipelineConfig, data: dict, nodes: dict, images_dir: str) -> dict:
    """RelevanceGen, the Evaluator (against the baseline), EvalReport and the Pusher."""
    from components.eval_report.component import EvalReportComponent
    from components.evaluator import Evaluator
    from components.relevance.component import Relevance
    from components.retrieval_metrics.eval_config import build_eval_config
    from components.tf_serving_pusher.component import TFServingPusher

    examples = data["example_gen"].outputs["examples"]
    model = nodes["trainer"].outputs["model"]
    baseline = nodes["baseline_model"].outputs["model"]
    # TFX caching keys on the Examples artifact, so an unchanged dataset is not scored again.
    relevance = Relevance(examples=examples).with_id("RelevanceGen")
    evaluator = Evaluator(
        examples=examples,
        model=model,
        baseline_model=baseline,
        relevance=relevance.outputs["relevance"],
        example_splits=["eval"],
        eval_config=build_eval_config(
            rsum_lower_bound=config.eval.rsum_lower_bound,
            rsum_change=config.eval.rsum_change_threshold,
            metric_bounds={k: dict(v) for k, v in config.eval.metric_bounds.items()},
        ),
    )
    report = EvalReportComponent(
        evaluation=evaluator.outputs["evaluation"], model=model, baseline_model=baseline,
        examples=examples, images_dir=images_dir,
    ).with_id("EvalReport")
    pusher = TFServingPusher(
        model=model, model_blessing=evaluator.outputs["blessing"], examples=examples,
        serving_dir=config.serving_dir, model_name=config.model_name,
    ).with_id("Pusher")
    return {"relevance": relevance, "evaluator": evaluator, "eval_report": report,
            "pusher": pusher}
