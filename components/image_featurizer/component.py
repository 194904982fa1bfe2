"""ImageFeaturizer: a Beam TFX component turning a folder of images into image features.

Its output is the ``image_features`` artifact holding the features file pair the caption
ExampleGen joins on (see ``outputs``); the ExampleGen takes that artifact as an input.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.artifacts import ImageFeatures
from components.image_featurizer import executor
from components.image_featurizer.config import MOBILENET_V2_TFLITE, BackboneConfig
from components.image_featurizer.decoding import DEFAULT_MAX_PIXELS
from components.image_featurizer.sources import images_fingerprint as fingerprint_folder

DEFAULT_FEATURES_NAME = "image_features"


class ImageFeaturizerSpec(types.ComponentSpec):
    """Parameters and output of ImageFeaturizer."""

    PARAMETERS = {
        executor.IMAGES_DIR_KEY: ExecutionParameter(type=str),
        executor.IMAGES_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
        executor.BACKBONE_KEY: ExecutionParameter(type=str),
        executor.FEATURES_NAME_KEY: ExecutionParameter(type=str),
        executor.MAX_PIXELS_KEY: ExecutionParameter(type=int),
        executor.BATCH_SIZE_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {}
    OUTPUTS = {executor.IMAGE_FEATURES_KEY: ChannelParameter(type=ImageFeatures)}


class ImageFeaturizer(base_beam_component.BaseBeamComponent):
    """Decodes, converts and resizes images, runs a frozen backbone with RunInference."""

    SPEC_CLASS = ImageFeaturizerSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        images_dir: str,
        images_fingerprint: str = "",
        backbone: BackboneConfig | None = None,
        features_name: str = DEFAULT_FEATURES_NAME,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = 32,
    ):
        """Configures the featurizer.

        Args:
          images_dir: the folder of image files (files directly inside it).
          images_fingerprint: ``images_fingerprint(images_dir)``; computed here when empty. It
            is an execution property, so changed images bust this component's cache.
          backbone: the frozen model; default ``MOBILENET_V2_TFLITE`` (1280-d).
          features_name: the output file stem.
          max_pixels: images with more pixels are skipped and reported as ``too_large``.
          batch_size: the most images per RunInference call.

        """
        if batch_size < 1 or max_pixels < 1:
            raise ValueError(f"batch_size={batch_size}, max_pixels={max_pixels}: must be >= 1")
        spec = ImageFeaturizerSpec(
            images_dir=images_dir,
            images_fingerprint=images_fingerprint or fingerprint_folder(images_dir),
            backbone=(backbone or MOBILENET_V2_TFLITE).to_json(),
            features_name=features_name,
            max_pixels=max_pixels,
            batch_size=batch_size,
            image_features=types.Channel(type=ImageFeatures),
        )
        super().__init__(spec=spec)
