"""Executor of TFServingPusher: blessing check (as the stock Pusher), then ``push_model``."""

import os
from typing import Any

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from components.tf_serving_pusher.push import PushConfig, push_model, remove_leftovers
from trainer import features

SERVING_DIR_KEY = "serving_dir"
MODEL_NAME_KEY = "model_name"
SERVING_BASE_PATH_KEY = "serving_base_path"
NUM_VERSIONS_KEY = "num_versions"
GALLERY_SPLIT_KEY = "gallery_split"
SEARCH_K_KEY = "search_k"
CHUNK_SIZE_KEY = "chunk_size"
PUSHED_VERSION_PROPERTY = "pushed_version"  # as the stock Pusher records it
SEARCH_DESTINATION_PROPERTY = "search_destination"


def push_config(exec_properties: dict[str, Any]) -> PushConfig:
    """The ``PushConfig`` of the component's execution properties."""
    return PushConfig(
        serving_dir=exec_properties[SERVING_DIR_KEY],
        model_name=exec_properties[MODEL_NAME_KEY],
        serving_base_path=exec_properties[SERVING_BASE_PATH_KEY],
        num_versions=int(exec_properties[NUM_VERSIONS_KEY]),
        search_k=int(exec_properties[SEARCH_K_KEY]),
        chunk_size=int(exec_properties[CHUNK_SIZE_KEY]))


def gallery_pattern(examples: list[types.Artifact], split: str) -> str:
    """TFRecord glob of ``split`` in the Examples artifact.

    Raises:
        ValueError: the artifact has no such split.

    """
    artifact = artifact_utils.get_single_instance(examples)
    splits = artifact_utils.decode_split_names(artifact.split_names)
    if split not in splits:
        raise ValueError(f"examples {artifact.uri} have splits {splits}, not the gallery split "
                         f"{split!r}")
    return os.path.join(artifact_utils.get_split_uri(examples, split), "*")


class Executor(pusher_executor.Executor):
    """Pushes a blessed encoder and its gallery search model to a TF Serving directory."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],  # noqa: N802 (TFX API)
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        """Pushes when blessed; records ``pushed``, ``pushed_version``, ``pushed_destination``.

        Args:
            input_dict: ``model``, ``model_blessing`` (optional) and ``examples``.
            output_dict: ``pushed_model``: one ``PushedModel`` artifact.
            exec_properties: see ``TFServingPusher``.

        """
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            remove_leftovers(push_config(exec_properties))  # push_model does it when blessed
            self._MarkNotPushed(model_push)
            return
        model_dir = self.GetModelPath(input_dict)
        split = exec_properties.get(GALLERY_SPLIT_KEY) or features.EVAL_SPLIT
        result = push_model(
            model_dir,
            gallery_pattern(input_dict[standard_component_specs.EXAMPLES_KEY], split),
            push_config(exec_properties))
        if not result.pushed:
            self._MarkNotPushed(model_push)
            model_push.set_string_custom_property(PUSHED_VERSION_PROPERTY, str(result.version))
            return
        io_utils.copy_dir(model_dir, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=result.destination,
                         pushed_version=str(result.version))
        model_push.set_string_custom_property(SEARCH_DESTINATION_PROPERTY,
                                              result.search_destination)
