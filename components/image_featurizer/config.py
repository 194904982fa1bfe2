"""Backbone configuration of the image featurizer: which frozen model, how to feed and read it."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping
from typing import Any

TFLITE = "tflite"
# The TFLite flatbuffer's network rebuilt in TensorFlow (trainer.model.image_backbone), as served by
# the encoder's embed_image_bytes signature: decoding included, so training and serving agree.
TF = "tf"
KERAS = "keras"
SAVED_MODEL = "saved_model"
BACKBONE_KINDS = (TFLITE, TF, KERAS, SAVED_MODEL)

# The quantized MobileNetV2 that produced ../shared/data/flickr8k/features/mobilenet_v2.npy.
DEFAULT_TFLITE_MODEL = str(
    pathlib.Path(__file__).resolve().parents[3]
    / "shared"
    / "models"
    / "mobilenet_v2_1.0_224_quant.tflite"
)
MOBILENET_V2_POOL_TENSOR = "MobilenetV2/Logits/AvgPool"


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """A frozen image backbone, loaded from a local (or Beam-filesystem) path, never downloaded.

    Attributes:
      kind: ``"tflite"`` (a TFLite flatbuffer run by the TFLite interpreter on PIL-decoded
        pixels), ``"tf"`` (the same flatbuffer's weights in the TensorFlow graph that the
        pushed encoder serves, decoding with TensorFlow as ``embed_image_bytes`` does),
        ``"keras"`` (a tf_keras model file / SavedModel,
        or a ``tf_keras.applications`` architecture plus a local weights file) or
        ``"saved_model"`` (a plain TF SavedModel called through a signature).
      model_path: the model file or folder; for ``application`` the weights file.
      output: what to read as the features. TFLite: the tensor name (an inner tensor is fine);
        Keras: a layer name; SavedModel: the signature's output key. Empty: the model's output.
      application: Keras only: a ``tf_keras.applications`` class name (e.g. ``"MobileNetV2"``),
        built with ``include_top=False, pooling="avg", weights=None`` before loading
        ``model_path`` as its weights.
      signature: SavedModel only: the signature to call.
      image_size: (height, width) the images are resized to; must match the model input.
      input_scale: float inputs are ``pixels * input_scale + input_offset`` (uint8 TFLite
        inputs get the raw pixels 0..255).
      input_offset: see ``input_scale``.
      num_threads: TFLite interpreter threads; 0 lets TFLite choose.

    """

    kind: str
    model_path: str
    output: str = ""
    application: str = ""
    signature: str = "serving_default"
    image_size: tuple[int, int] = (224, 224)
    input_scale: float = 1.0
    input_offset: float = 0.0
    num_threads: int = 0

    def __post_init__(self):
        if self.kind not in BACKBONE_KINDS:
            raise ValueError(f"BackboneConfig.kind={self.kind!r}: must be one of {BACKBONE_KINDS}")
        if not self.model_path:
            raise ValueError("BackboneConfig.model_path: must name a model file or folder")
        size = tuple(self.image_size)
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise ValueError(
                f"BackboneConfig.image_size={self.image_size!r}: must be two positive ints "
                "(height, width)"
            )
        object.__setattr__(self, "image_size", size)
        if self.application and self.kind != KERAS:
            raise ValueError(
                f"BackboneConfig.application={self.application!r}: only valid with kind='keras'"
            )
        if self.kind == TF and self.output:
            raise ValueError(f"BackboneConfig.output={self.output!r}: kind='tf' always reads the "
                             "model's first average pool (the 1280-d features of MobileNetV2)")
        if self.num_threads < 0:
            raise ValueError(f"BackboneConfig.num_threads={self.num_threads}: must be >= 0")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BackboneConfig:
        """Builds a config from a mapping; unknown keys raise ValueError naming them."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"BackboneConfig: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_json(self) -> str:
        """Serializes the config (the component's execution property)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BackboneConfig:
        """Inverse of ``to_json``."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"BackboneConfig JSON must be an object, got {text[:80]!r}")
        if "image_size" in values:
            values["image_size"] = tuple(values["image_size"])
        return cls.from_dict(values)


# The default backbone: reproduces the recipe of flickr8k/features/mobilenet_v2.npy (1280-d).
MOBILENET_V2_TFLITE = BackboneConfig(
    kind=TFLITE, model_path=DEFAULT_TFLITE_MODEL, output=MOBILENET_V2_POOL_TENSOR
)
# The same model as the served encoder's embed_image_bytes runs it (1280-d, the pool output).
MOBILENET_V2_TF = BackboneConfig(kind=TF, model_path=DEFAULT_TFLITE_MODEL)
# The width of MOBILENET_V2_TFLITE's features (the AvgPool tensor is [1, 1, 1, 1280]); the
# pipeline needs it before the featurizer has run, to write the curated schema.
MOBILENET_V2_FEATURE_DIM = 1280
