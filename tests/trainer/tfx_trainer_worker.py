"""A TFX Trainer worker of a cluster: ``FnArgs`` as TFX's Trainer executor builds them, ``run_fn``.

Run as ``python -m tests.trainer.tfx_trainer_worker EXAMPLES TRANSFORM_GRAPH OUT CUSTOM_CONFIG``
under a cluster ``TF_CONFIG``, as a Kubernetes pod or a Vertex AI Training worker runs the
Trainer: EXAMPLES holds ``Split-train/`` and ``Split-eval/`` of transformed examples,
TRANSFORM_GRAPH is the Transform's output, OUT receives the ``model`` (``Format-Serving``) and
``model_run`` artifacts, CUSTOM_CONFIG is the Trainer's ``custom_config`` as JSON. The
``FnArgs`` come from the executor's own ``_GetFnArgs`` and ``run_fn`` from TFX's ``udf_utils``,
as ``GenericExecutor.Do`` gets them, so whatever TFX does before ``run_fn`` runs here before it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported

import pathlib  # noqa: E402
import sys  # noqa: E402

from tfx.components.trainer import executor  # noqa: E402
from tfx.components.util import udf_utils  # noqa: E402
from tfx.proto import trainer_pb2  # noqa: E402
from tfx.types import artifact_utils, standard_artifacts  # noqa: E402
from tfx.types import standard_component_specs as specs  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

RUN_FN = "trainer.task.run_fn"


def _artifact(kind, uri: pathlib.Path):
    artifact = kind()
    artifact.uri = str(uri)
    return artifact


def trainer_call(examples: pathlib.Path, transform_graph: pathlib.Path, out: pathlib.Path,
                 custom_config: str):
    """(``run_fn``, its ``FnArgs``) as TFX's ``GenericExecutor`` resolves them for the artifacts."""
    examples_artifact = _artifact(standard_artifacts.Examples, examples)
    examples_artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    input_dict = {specs.EXAMPLES_KEY: [examples_artifact],
                  specs.TRANSFORM_GRAPH_KEY: [_artifact(standard_artifacts.TransformGraph,
                                                        transform_graph)]}
    output_dict = {specs.MODEL_KEY: [_artifact(standard_artifacts.Model, out / "model")],
                   specs.MODEL_RUN_KEY: [_artifact(standard_artifacts.ModelRun,
                                                   out / "model_run")]}
    exec_properties = {
        specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.TrainArgs()),
        specs.EVAL_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.EvalArgs()),
        specs.CUSTOM_CONFIG_KEY: custom_config,
        specs.RUN_FN_KEY: RUN_FN,
    }
    fn_args = executor.GenericExecutor()._GetFnArgs(input_dict, output_dict, exec_properties)
    return udf_utils.get_fn(exec_properties, "run_fn"), fn_args


def main(argv: list[str]) -> None:
    examples, transform_graph, out, custom_config = argv
    run_fn, fn_args = trainer_call(pathlib.Path(examples), pathlib.Path(transform_graph),
                                   pathlib.Path(out), custom_config)
    run_fn(fn_args)


if __name__ == "__main__":
    main(sys.argv[1:])
