"""TFServingPusher: the stock Pusher's contract plus TF Serving config and gallery search.

Used instead of ``tfx.components.Pusher``::

    pusher = TFServingPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        serving_dir="/abs/serving", model_name="xmodal")
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.tf_serving_pusher import executor
from components.tf_serving_pusher.push import DEFAULT_SERVING_BASE_PATH, PushConfig
from serving.search import DEFAULT_CHUNK_SIZE
from trainer import features


class TFServingPusherSpec(types.ComponentSpec):
    """Inputs, parameters and output of TFServingPusher."""

    PARAMETERS = {
        executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
        executor.MODEL_NAME_KEY: ExecutionParameter(type=str),
        executor.SERVING_BASE_PATH_KEY: ExecutionParameter(type=str),
        executor.NUM_VERSIONS_KEY: ExecutionParameter(type=int),
        executor.GALLERY_SPLIT_KEY: ExecutionParameter(type=str),
        executor.SEARCH_K_KEY: ExecutionParameter(type=int),
        executor.CHUNK_SIZE_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        standard_component_specs.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        standard_component_specs.MODEL_BLESSING_KEY: ChannelParameter(
            type=standard_artifacts.ModelBlessing, optional=True),
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(
            type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        standard_component_specs.PUSHED_MODEL_KEY: ChannelParameter(
            type=standard_artifacts.PushedModel),
    }


class TFServingPusher(base_component.BaseComponent):
    """Pushes a blessed encoder + its gallery search model in TF Serving's layout."""

    SPEC_CLASS = TFServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    # A TFX component's constructor takes each channel and execution property by keyword.
    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel, serving_dir: str,  # noqa: PLR0913
                 model_name: str, model_blessing: types.BaseChannel | None = None,
                 serving_base_path: str = DEFAULT_SERVING_BASE_PATH, num_versions: int = 1,
                 gallery_split: str = features.EVAL_SPLIT, search_k: int = 10,
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        """Configures the pusher.

        Args:
            model: the Trainer's ``model`` (its ``Format-Serving`` export is pushed).
            examples: raw Examples; the images of ``gallery_split`` form the search gallery.
            serving_dir: destination (``<serving_dir>/<model_name>/<version>/``).
            model_name: served name; the search model is ``<model_name>_search``.
            model_blessing: the Evaluator's blessing; unblessed models are not pushed.
            serving_base_path: ``serving_dir`` as the model server sees it (``models.config``
                base paths), e.g. ``/models`` in the ``tensorflow/serving`` container.
            num_versions: how many latest versions TF Serving keeps serving.
            gallery_split: the Examples split indexed for search.
            search_k: results per query of the search model.
            chunk_size: gallery rows scored at once.

        """
        PushConfig(serving_dir, model_name, serving_base_path, num_versions, search_k,
                   chunk_size)  # validates early, at pipeline construction
        super().__init__(spec=TFServingPusherSpec(
            model=model, model_blessing=model_blessing, examples=examples,
            serving_dir=serving_dir, model_name=model_name,
            serving_base_path=serving_base_path, num_versions=num_versions,
            gallery_split=gallery_split, search_k=search_k, chunk_size=chunk_size,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
