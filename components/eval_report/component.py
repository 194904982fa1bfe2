"""EvalReport: an HTML page per evaluation (metrics vs. baseline, R@K curves, text queries)."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.eval_report import executor
from trainer import features


class EvalReport(artifact.Artifact):
    """``index.html`` (self-contained) and ``recall_at_k.png``."""

    TYPE_NAME = "xmodal.EvalReport"  # namespaced: KFP v2 requires ns.Name


class EvalReportSpec(types.ComponentSpec):
    """Inputs, parameters and output of EvalReport."""

    PARAMETERS = {
        executor.SPLIT_KEY: ExecutionParameter(type=str),
        executor.NUM_QUERIES_KEY: ExecutionParameter(type=int),
        executor.MAX_K_KEY: ExecutionParameter(type=int),
        executor.IMAGES_DIR_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model,
                                                      optional=True),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {executor.REPORT_KEY: ChannelParameter(type=EvalReport)}


class EvalReportComponent(base_component.BaseComponent):
    """Writes the evaluation report next to the Evaluator's output."""

    SPEC_CLASS = EvalReportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    # A TFX component's constructor takes each channel and execution property by keyword.
    def __init__(self, evaluation: types.BaseChannel, model: types.BaseChannel,  # noqa: PLR0913
                 examples: types.BaseChannel, baseline_model: types.BaseChannel | None = None,
                 split: str = features.EVAL_SPLIT, num_queries: int = 6, max_k: int = 50,
                 images_dir: str = ""):
        """Configures the report.

        Args:
          evaluation: the Evaluator's ``evaluation`` output.
          model: the candidate model (the Trainer's ``model``).
          examples: the raw Examples the Evaluator read.
          baseline_model: the baseline the Evaluator compared against (optional; adds its
            recall curves).
          split: the evaluated split.
          num_queries: text queries in the qualitative panel.
          max_k: the largest K of the recall curves.
          images_dir: folder of the images (file = image id); the panel then embeds their
            thumbnails. "" shows file names only (see ``thumbnails.find_images_dir``).

        """
        if num_queries < 1 or max_k < 1:
            raise ValueError(f"num_queries={num_queries}, max_k={max_k}: must be >= 1")
        super().__init__(spec=EvalReportSpec(
            evaluation=evaluation, model=model, baseline_model=baseline_model,
            examples=examples, split=split, num_queries=num_queries, max_k=max_k,
            images_dir=images_dir, report=types.Channel(type=EvalReport)))
