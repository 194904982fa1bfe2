"""RunInference model handlers: a frozen backbone maps uint8 images [B, H, W, 3] to [B, D].

``TFLiteFeatureHandler`` runs a TFLite flatbuffer and reads any tensor (inner ones too, through
``experimental_preserve_all_tensors``), dequantizing uint8/int8 outputs. ``TFBackboneHandler``
runs the same flatbuffer's network as a TensorFlow graph (``trainer.model.image_backbone``, the one
the
encoder serves) on images that ``decode_with_tf`` decoded as that graph does. ``TFFeatureHandler``
runs a tf_keras model (file, SavedModel or ``tf_keras.applications`` architecture + local
weights) or a plain SavedModel signature. Models are read from paths only; nothing is downloaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from components.image_featurizer import decoding
from components.image_featurizer.config import KERAS, SAVED_MODEL, TF, TFLITE, BackboneConfig

# A loaded backbone: uint8 images [B, H, W, 3] -> float32 features [B, D].
FeatureFn = Callable[[np.ndarray], np.ndarray]
METRICS_NAMESPACE = "ImageFeaturizer"


class _FeatureHandler(ModelHandler[np.ndarray, PredictionResult, FeatureFn]):
    """Shared batching and inference; subclasses only load the backbone."""

    def __init__(self, config: BackboneConfig, max_batch_size: int = 32):
        super().__init__()
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size}: must be >= 1")
        self._config = config
        self._max_batch_size = max_batch_size

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: FeatureFn,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        """Featurizes a batch of uint8 [H, W, 3] images into float32 [D] rows."""
        features = model(np.stack(batch))
        return [PredictionResult(None, row) for row in features]

    def batch_elements_kwargs(self) -> dict[str, int]:
        """Lets Beam batch up to ``max_batch_size`` images per call."""
        return {"min_batch_size": 1, "max_batch_size": self._max_batch_size}

    def get_metrics_namespace(self) -> str:
        """The namespace of RunInference's Beam metrics."""
        return METRICS_NAMESPACE


class TFLiteFeatureHandler(_FeatureHandler):
    """A TFLite backbone taking [1, H, W, 3]; run_inference loops over the batch."""

    def load_model(self) -> FeatureFn:
        """Reads the flatbuffer and checks it; each calling thread gets its own interpreter."""
        with FileSystems.open(
            self._config.model_path, compression_type=CompressionTypes.UNCOMPRESSED
        ) as handle:
            model = _ThreadLocalTFLite(handle.read(), self._config)
        model.interpreter()  # validates the input shape and output tensor now, on load
        return model


class _ThreadLocalTFLite:
    """uint8 [B, H, W, 3] -> dequantized float32 [B, D] with one interpreter per thread.

    A TFLite interpreter is not thread-safe, and Beam shares one loaded model between the
    threads of a worker, so each thread builds its own interpreter from the shared bytes.
    """

    def __init__(self, content: bytes, config: BackboneConfig):
        self._content = content
        self._config = config
        self._local = threading.local()

    def interpreter(self) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """The calling thread's (interpreter, input details, output tensor details), built once."""
        if not hasattr(self._local, "state"):
            self._local.state = _build_interpreter(self._content, self._config)
        return self._local.state

    def __call__(self, images: np.ndarray) -> np.ndarray:
        interpreter, source, target = self.interpreter()
        scale, zero_point = target["quantization"]
        quantized = np.issubdtype(target["dtype"], np.integer) and scale > 0
        rows = []
        for image in images:
            value = image[np.newaxis]
            if source["dtype"] != np.uint8:
                value = value.astype(np.float32) * self._config.input_scale
                value += self._config.input_offset
            interpreter.set_tensor(source["index"], value.astype(source["dtype"]))
            interpreter.invoke()
            output = interpreter.get_tensor(target["index"]).reshape(-1).astype(np.float32)
            rows.append((output - zero_point) * scale if quantized else output)
        return np.stack(rows)


def _build_interpreter(
    content: bytes, config: BackboneConfig
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """An allocated interpreter, its input details and the details of the tensor to read."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(
        model_content=content,
        experimental_preserve_all_tensors=True,
        num_threads=config.num_threads or None,
    )
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    expected = [1, *config.image_size, 3]
    if list(source["shape"]) != expected:
        raise ValueError(
            f"{config.model_path}: input shape {list(source['shape'])} != {expected} "
            "(set BackboneConfig.image_size to the model's input size)"
        )
    return interpreter, source, _tflite_tensor(interpreter, config)


def _tflite_tensor(interpreter: Any, config: BackboneConfig) -> dict[str, Any]:
    """The details of the tensor named ``config.output`` (the model output when empty)."""
    if not config.output:
        return interpreter.get_output_details()[0]
    details = interpreter.get_tensor_details()
    for detail in details:
        if detail["name"] == config.output:
            return detail
    names = [detail["name"] for detail in details if "Logits" in detail["name"]] or [
        detail["name"] for detail in details[-10:]
    ]
    raise ValueError(f"{config.model_path}: no tensor {config.output!r}; e.g. {names}")


class TFBackboneHandler(_FeatureHandler):
    """The served encoder's TF backbone on float32 pixels decoded by ``decode_with_tf``."""

    def load_model(self) -> FeatureFn:
        """Builds the graph from the TFLite flatbuffer's weights (no download)."""
        import tensorflow as tf

        from trainer.model.image_backbone import ImageBackbone

        backbone = ImageBackbone(self._config.model_path)
        features = tf.function(backbone.features, input_signature=[
            tf.TensorSpec([None, *backbone.image_size, 3], tf.float32)])
        return lambda images: features(images.astype(np.float32)).numpy()


# Messages of trainer.model.image_backbone.decode_image's checks -> the featurizer's skip reasons.
_TF_SKIP_REASONS = (("is empty", decoding.NOT_AN_IMAGE),
                    ("is not a JPEG or PNG", decoding.NOT_AN_IMAGE),
                    ("is too large", decoding.TOO_LARGE))


def decode_with_tf(data: bytes, name: str, size: tuple[int, int],
                   max_pixels: int) -> decoding.DecodedImage:
    """Decodes as ``embed_image_bytes`` does, so a file is skipped exactly when serving fails.

    PIL then reads the header only, for the report's original mode and size.

    Returns:
      The image with float32 pixels [height, width, 3] (integer values 0..255).

    Raises:
      decoding.ImageSkipped: what TensorFlow's decoding rejects, with the reason from its
        message (empty or not JPEG/PNG: ``not_an_image``; too many pixels: ``too_large``;
        anything else, e.g. truncated data: ``corrupt``).

    """
    from serving.tf_errors import error_detail

    try:
        pixels = _tf_decoder(tuple(size), max_pixels)(data).numpy()
    except _invalid_argument() as err:
        detail = error_detail(err.message)
        reason = next((why for text, why in _TF_SKIP_REASONS if text in detail),
                      decoding.CORRUPT)
        raise decoding.ImageSkipped(name, reason, detail) from err
    header = decoding.open_header(data, name)
    return decoding.DecodedImage(name, pixels, "" if header.mode == "RGB" else header.mode,
                                 header.size)


def _invalid_argument() -> type[Exception]:
    import tensorflow as tf

    return tf.errors.InvalidArgumentError


_DECODERS: dict[tuple[tuple[int, int], int], Callable[[bytes], Any]] = {}


def _tf_decoder(size: tuple[int, int], max_pixels: int) -> Callable[[bytes], Any]:
    """One traced decoding function per (size, max_pixels), shared by a worker's threads."""
    if (size, max_pixels) not in _DECODERS:
        import tensorflow as tf

        from trainer.model.image_backbone import decode_image

        _DECODERS[size, max_pixels] = tf.function(
            lambda data: decode_image(data, tf.constant(0, tf.int64), size, max_pixels),
            input_signature=[tf.TensorSpec([], tf.string)])
    return _DECODERS[size, max_pixels]


class TFFeatureHandler(_FeatureHandler):
    """A tf_keras model or a SavedModel signature, run on whole batches."""

    def load_model(self) -> FeatureFn:
        """Loads the backbone (no download) and returns its batched feature function."""
        import tensorflow as tf

        config = self._config
        call = _load_keras(config) if config.kind == KERAS else _load_signature(config)

        def featurize(images: np.ndarray) -> np.ndarray:
            value = images.astype(np.float32) * config.input_scale + config.input_offset
            output = np.asarray(call(tf.constant(value)), dtype=np.float32)
            return output.reshape(len(images), -1)

        return featurize


def _load_keras(config: BackboneConfig) -> Callable[[Any], Any]:
    """A tf_keras model (or one of its layers' output) from a local file/folder."""
    import tf_keras as keras

    if config.application:
        constructor = getattr(keras.applications, config.application, None)
        if constructor is None:
            raise ValueError(f"tf_keras.applications has no {config.application!r}")
        model = constructor(
            include_top=False,
            weights=None,
            pooling="avg",
            input_shape=(*config.image_size, 3),
        )
        model.load_weights(config.model_path)
    else:
        model = keras.models.load_model(config.model_path, compile=False)
    if config.output:
        model = keras.Model(model.inputs, model.get_layer(config.output).output)
    return lambda images: model(images, training=False)


def _load_signature(config: BackboneConfig) -> Callable[[Any], Any]:
    """A SavedModel signature with one image input; returns the ``config.output`` tensor."""
    import tensorflow as tf

    loaded = tf.saved_model.load(config.model_path)
    if config.signature not in loaded.signatures:
        raise ValueError(
            f"{config.model_path}: no signature {config.signature!r}; "
            f"has {sorted(loaded.signatures)}"
        )
    function = loaded.signatures[config.signature]
    inputs = sorted(function.structured_input_signature[1])
    if len(inputs) != 1:
        raise ValueError(
            f"{config.model_path}: signature {config.signature!r} takes {inputs}; the "
            "featurizer needs exactly one image input"
        )
    outputs = sorted(function.structured_outputs)
    key = config.output or (outputs[0] if len(outputs) == 1 else "")
    if key not in outputs:
        raise ValueError(
            f"{config.model_path}: signature {config.signature!r} outputs {outputs}; set "
            f"BackboneConfig.output to one of them (got {config.output!r})"
        )

    def call(images: Any) -> Any:
        # Reading the signature through ``loaded`` keeps the SavedModel's variables alive.
        return loaded.signatures[config.signature](**{inputs[0]: images})[key]

    return call


def make_model_handler(config: BackboneConfig, max_batch_size: int = 32) -> _FeatureHandler:
    """The RunInference handler for ``config.kind``."""
    if config.kind == TFLITE:
        return TFLiteFeatureHandler(config, max_batch_size)
    if config.kind == TF:
        return TFBackboneHandler(config, max_batch_size)
    if config.kind in (KERAS, SAVED_MODEL):
        return TFFeatureHandler(config, max_batch_size)
    raise ValueError(f"unknown backbone kind {config.kind!r}")
