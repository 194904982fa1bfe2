"""A tiny full-integer-quantized TFLite CNN shaped like MobileNetV2's blocks, for fast tests.

conv 3x3 stride 2 + ReLU6 -> depthwise 3x3 + ReLU6 -> 1x1 conv (linear) -> residual add with a
1x1 conv of the first block -> 1x1 conv + ReLU6 -> average pool over the whole map: [1, 8] per
image. Converted with uint8 input and int8, per-channel weights (so the reader's QUANTIZE op and
per-channel dequantization are exercised; the shipped MobileNetV2 is uint8 per-tensor).
"""

import functools
import pathlib
import tempfile

import numpy as np
import tensorflow as tf
import tf_keras as keras

IMAGE_SIZE = 16
FEATURE_DIM = 8


def _model() -> keras.Model:
    keras.utils.set_random_seed(7)
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), batch_size=1)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(inputs)
    x = keras.layers.ReLU(6.0)(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.Conv2D(4, 1)(y)
    x = keras.layers.Add()([keras.layers.Conv2D(4, 1)(x), y])
    x = keras.layers.ReLU(6.0)(keras.layers.Conv2D(FEATURE_DIM, 1)(x))
    x = keras.layers.AveragePooling2D(IMAGE_SIZE // 2)(x)
    return keras.Model(inputs, keras.layers.Reshape((FEATURE_DIM,))(x))


def _representative():
    rng = np.random.default_rng(0)
    for _ in range(16):
        yield [rng.uniform(-1, 1, (1, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)]


@functools.lru_cache(maxsize=1)
def tiny_tflite_path() -> str:
    """Writes the model once per session (the float model reads pixels / 127.5 - 1)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(_model())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    path = pathlib.Path(tempfile.mkdtemp(prefix="tiny_tflite_")) / "tiny.tflite"
    path.write_bytes(converter.convert())
    return str(path)
