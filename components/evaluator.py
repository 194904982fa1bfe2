"""The stock TFX Evaluator with a relevance input, never blessing a candidate that is its baseline.

When a pipeline re-runs with nothing new, the Trainer is served from cache and the baseline (the
model last pushed, ``pipeline.pipeline.baseline_resolver``) resolves to that very model:
evaluating it "against itself" would bless it again. This executor evaluates as usual, then
records NOT_BLESSED with a reason when the candidate and the baseline are the same Model
artifact. On the local runner such a candidate is already served: a blessed model that never
reached the serving folder is not the baseline, so it is evaluated against the served one and
pushed.

The ROUGE-L relevance matrix (a ``RelevanceMatrix`` artifact of the Relevance component) is an
input, so ML Metadata records which matrix scored the nDCG metrics; TFMA builds its metrics from
the ``EvalConfig`` alone, so the executor writes the artifact's URI into that config first.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow_model_analysis as tfma
from absl import logging
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils, proto_utils

from components.artifacts import RelevanceMatrix
from components.retrieval_metrics.eval_config import with_relevance_dir

RELEVANCE_KEY = "relevance"
NOT_BLESSED_REASON_KEY = "not_blessed_reason"
IDENTICAL_TO_BASELINE = "candidate is the baseline model itself (same artifact)"


def is_same_model(input_dict: dict[str, list[types.Artifact]]) -> bool:
    """Whether the candidate model and the baseline model are one artifact."""
    models = input_dict.get(standard_component_specs.MODEL_KEY) or []
    baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
    if not models or not baselines:
        return False
    model, baseline = models[0], baselines[0]
    if model.id and baseline.id:
        return model.id == baseline.id
    return os.path.normpath(model.uri) == os.path.normpath(baseline.uri)


def with_relevance_input(input_dict: dict[str, list[types.Artifact]],
                         exec_properties: dict[str, Any]) -> dict[str, Any]:
    """``exec_properties`` whose eval config reads the ``relevance`` input artifact, if any."""
    relevance = input_dict.get(RELEVANCE_KEY) or []
    if not relevance:
        return exec_properties
    uri = artifact_utils.get_single_instance(list(relevance)).uri
    config = proto_utils.json_to_proto(
        exec_properties[standard_component_specs.EVAL_CONFIG_KEY], tfma.EvalConfig())
    logging.info("Evaluator: relevance matrix from %s", uri)
    return {**exec_properties, standard_component_specs.EVAL_CONFIG_KEY:
            proto_utils.proto_to_json(with_relevance_dir(config, uri))}


class Executor(evaluator_executor.Executor):
    """Evaluator executor that reads its relevance input and refuses to re-bless the baseline."""

    def Do(  # noqa: N802  (TFX executor API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Runs the stock evaluation, then un-blesses a candidate identical to its baseline."""
        super().Do(input_dict, output_dict, with_relevance_input(input_dict, exec_properties))
        if not is_same_model(input_dict):
            return
        blessing = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.BLESSING_KEY]
        )
        blessed_file = os.path.join(blessing.uri, constants.BLESSED_FILE_NAME)
        if fileio.exists(blessed_file):
            fileio.remove(blessed_file)
        with fileio.open(os.path.join(blessing.uri, constants.NOT_BLESSED_FILE_NAME), "w") as f:
            f.write("")
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BLESSED_KEY, constants.NOT_BLESSED_VALUE
        )
        blessing.set_string_custom_property(NOT_BLESSED_REASON_KEY, IDENTICAL_TO_BASELINE)
        logging.info("Model %s NOT_BLESSED: %s", blessing.uri, IDENTICAL_TO_BASELINE)


class EvaluatorSpec(standard_component_specs.EvaluatorSpec):
    """The stock Evaluator spec plus the optional ``relevance`` input."""

    INPUTS = {**standard_component_specs.EvaluatorSpec.INPUTS,
              RELEVANCE_KEY: ChannelParameter(type=RelevanceMatrix, optional=True)}


class Evaluator(evaluator_component.Evaluator):
    """``tfx.components.Evaluator`` with a ``relevance`` input and the identical-baseline rule."""

    SPEC_CLASS = EvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 eval_config: tfma.EvalConfig,
                 baseline_model: types.BaseChannel | None = None,
                 relevance: types.BaseChannel | None = None,
                 example_splits: list[str] | None = None):
        """Configures the evaluation (the stock arguments this project uses, plus relevance).

        Args:
          examples: raw Examples to evaluate on.
          model: the candidate Model.
          eval_config: metrics and thresholds (``build_eval_config``).
          baseline_model: the baseline Model (the model last pushed), for change thresholds.
          relevance: the eval split's ``RelevanceMatrix`` (Relevance component output); without
            it the retrieval metric computes the matrix itself.
          example_splits: splits to evaluate (default: the stock Evaluator's).

        """
        spec = EvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model, relevance=relevance,
            eval_config=eval_config, example_splits=json_utils.dumps(example_splits),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing))
        # The stock __init__ builds the stock spec, which has no relevance input.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
