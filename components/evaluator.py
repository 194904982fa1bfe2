"""The stock TFX Evaluator, except that a candidate identical to its baseline is never blessed.

When a pipeline re-runs with nothing new, the Trainer is served from cache and the latest blessed
model resolves to that very model: evaluating it "against itself" would bless (and push) it again.
This executor evaluates as usual, then records NOT_BLESSED with a reason when the candidate and the
baseline are the same Model artifact.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_component_specs

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


class Executor(evaluator_executor.Executor):
    """Evaluator executor that refuses to re-bless the baseline model."""

    def Do(  # noqa: N802  (TFX executor API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Runs the stock evaluation, then un-blesses a candidate identical to its baseline."""
        super().Do(input_dict, output_dict, exec_properties)
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


class Evaluator(evaluator_component.Evaluator):
    """``tfx.components.Evaluator`` with the identical-baseline rule (same constructor)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
