"""Relevance: a Beam TFX component writing the ROUGE-L relevance matrix of the eval split."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.artifacts import RelevanceMatrix
from components.relevance import executor
from trainer import features


class RelevanceSpec(types.ComponentSpec):
    """Input, parameters and output of Relevance."""

    PARAMETERS = {
        executor.SPLIT_KEY: ExecutionParameter(type=str),
        executor.CACHE_DIR_KEY: ExecutionParameter(type=str, optional=True),
        executor.QUERIES_PER_TASK_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {executor.RELEVANCE_KEY: ChannelParameter(type=RelevanceMatrix)}


class Relevance(base_beam_component.BaseBeamComponent):
    """ROUGE-L relevance of every eval image to every eval caption (TERAN's "R" measure)."""

    SPEC_CLASS = RelevanceSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, split: str = features.EVAL_SPLIT,
                 cache_dir: str = "", queries_per_task: int = 256):
        """Configures the component.

        Args:
          examples: raw Examples (ExampleGen output) with ``image_id``, ``caption_id``,
            ``caption``.
          split: the split to score.
          cache_dir: also write the matrix here under its content key; pass the same folder as
            ``build_eval_config``'s ``MetricSettings(relevance_dir=...)`` so the Evaluator reads
            it instead of recomputing.
          queries_per_task: query captions per Beam work item.

        """
        super().__init__(spec=RelevanceSpec(
            examples=examples, split=split, cache_dir=cache_dir,
            queries_per_task=queries_per_task,
            relevance=types.Channel(type=RelevanceMatrix)))
