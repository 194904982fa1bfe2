"""MobileNetV2 in TensorFlow with the weights of the shipped quantized TFLite model, bytes in.

``ImageBackbone`` maps encoded JPEG/PNG bytes [N] to the global-average-pool features [N, D]
(D = 1280 for MobileNetV2 1.0/224) that the TFLite featurizer reads from the same flatbuffer:

1. decode (JPEG with libjpeg's accurate integer DCT, which is what PIL uses; PNG with alpha
   composited over white; grayscale and palette images become RGB),
2. resize to the model's input size (bilinear, antialiased) and round to uint8 values, as the
   featurizer's PIL path feeds uint8 pixels,
3. scale with the input tensor's quantization (``real = scale * (q - zero_point)``),
4. run the network's ops (``trainer.model.tflite_graph``) in float32 with dequantized weights.

The quantized model rounds every activation to its uint8 grid (requantization between layers)
and saturates it at that grid's ends. This float graph keeps the saturation (each op's output is
clamped to its tensor's real range, which also covers the fused ReLU6) but not the rounding, so
its features differ from the TFLite ones by a few quantization steps; nearest-neighbour identity
against the reference features is the parity bar (tests/components/test_image_featurizer_
acceptance.py). Bad bytes raise ``InvalidArgumentError`` naming the item and the problem.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainer.config import DEFAULT_TFLITE_PATH
from trainer.features import DEFAULT_MAX_PIXELS, JPEG_END, JPEG_MAGIC, PNG_END, PNG_MAGIC
from trainer.model import tflite_graph


def read_tflite(path: str, what: str = "image backbone") -> bytes:
    """The flatbuffer's bytes; FileNotFoundError naming ``what`` when it is missing."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{what}: no TFLite model at {path!r} (set the path to the "
                                "shipped mobilenet_v2_1.0_224_quant.tflite)")
    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()


def _check(condition: tf.Tensor, template: str, *values: tf.Tensor) -> tf.Operation:
    """An assertion whose InvalidArgumentError carries one formatted line (``{}`` = a value)."""
    return tf.debugging.Assert(condition, [tf.strings.format(template, values, summarize=8)])


def _contains(data: tf.Tensor, marker: bytes) -> tf.Tensor:
    """Whether the byte string ``marker`` occurs anywhere in ``data`` (a scalar string)."""
    raw = tf.io.decode_raw(data, tf.uint8)  # [L]
    starts = tf.maximum(tf.size(raw) - len(marker) + 1, 0)
    found = tf.ones([starts], tf.bool)
    for offset, byte in enumerate(marker):
        found &= tf.equal(raw[offset:offset + starts], byte)
    return tf.reduce_any(found)


def _png_shape(data: tf.Tensor, item: tf.Tensor) -> tf.Tensor:
    """(height, width) from a PNG's IHDR chunk, without decoding pixels."""
    check = _check(tf.strings.length(data) >= 24,
                   "image {} is a truncated PNG (no IHDR header)", item)
    with tf.control_dependencies([check]):
        width_height = tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.int32,
                                        little_endian=False)
    return tf.reverse(width_height, [0])


def _png_rgb(data: tf.Tensor) -> tf.Tensor:
    """uint8 RGB [H, W, 3]; transparent pixels are composited over white, as PIL's path does."""
    rgba = tf.cast(tf.io.decode_png(data, channels=4), tf.float32)
    alpha = rgba[..., 3:] / 255.0
    return tf.cast(tf.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


def _byte_checks(data: tf.Tensor, item: tf.Tensor, is_jpeg: tf.Tensor) -> list[tf.Operation]:
    """The checks of a file's bytes that need no decoding: not empty, JPEG/PNG, not cut off."""
    is_png = tf.strings.substr(data, 0, len(PNG_MAGIC)) == PNG_MAGIC
    is_empty = tf.strings.length(data) == 0
    return [
        _check(~is_empty, "image {} is empty (0 bytes)", item),
        _check(is_jpeg | is_png | is_empty,
               "image {} is not a JPEG or PNG image (first bytes {})", item,
               tf.strings.substr(data, 0, 8)),
        _check(~is_jpeg | _contains(data, JPEG_END),
               "image {} is a truncated JPEG (no end-of-image marker)", item),
        _check(~is_png | _contains(data, PNG_END),
               "image {} is a truncated PNG (no IEND chunk)", item),
    ]


def decode_image(data: tf.Tensor, item: tf.Tensor, size: tuple[int, int],
                 max_pixels: int) -> tf.Tensor:
    """Encoded JPEG/PNG bytes [] -> float32 RGB [height, width, 3], values 0..255 (integers).

    Raises (when run):
      InvalidArgumentError: empty bytes, neither JPEG nor PNG, a file cut off before its end
        marker (JPEG end-of-image, PNG ``IEND``), or more than ``max_pixels`` pixels (read
        from the header before any pixel is decoded), each naming ``item``; data that is
        corrupt in another way fails in TensorFlow's decoder, whose message names no item.

    """
    is_jpeg = tf.strings.substr(data, 0, len(JPEG_MAGIC)) == JPEG_MAGIC
    with tf.control_dependencies(_byte_checks(data, item, is_jpeg)):
        shape = tf.cond(is_jpeg, lambda: tf.image.extract_jpeg_shape(data)[:2],
                        lambda: _png_shape(data, item))
    pixels_count = tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)
    too_large = _check(pixels_count <= max_pixels,
                       "image {} is too large: {} (height, width) = {} pixels > max {}", item,
                       shape, pixels_count, tf.constant(max_pixels, tf.int64))
    with tf.control_dependencies([too_large]):
        rgb = tf.cond(is_jpeg, lambda: tf.io.decode_jpeg(
            data, channels=3, dct_method="INTEGER_ACCURATE"), lambda: _png_rgb(data))
    rgb = tf.cast(rgb, tf.float32)
    resized = tf.cond(
        tf.reduce_all(tf.shape(rgb)[:2] == size),
        lambda: rgb,
        lambda: tf.round(tf.clip_by_value(
            tf.image.resize(rgb, size, method="bilinear", antialias=True), 0.0, 255.0)))
    return tf.ensure_shape(resized, [*size, 3])


def _clamp(y: tf.Tensor, low: float, high: float) -> tf.Tensor:
    """``y`` clamped to [low, high], either of which may be infinite.

    A clamp from 0 is written as ReLU6 (or ReLU), which grappler fuses with the convolution and
    bias add before it into one oneDNN op; only an upper bound below 6 (a quantized range such as
    [0, 255 * 0.0235294]) stays a separate minimum. The values are those of ``clip_by_value``.
    """
    if low == 0.0:
        y = tf.nn.relu6(y) if high <= 6.0 else tf.nn.relu(y)
        return y if high in (6.0, np.inf) else tf.minimum(y, high)
    if np.isfinite(low):
        y = tf.maximum(y, low)
    return tf.minimum(y, high) if np.isfinite(high) else y


class ImageBackbone(tf.Module):
    """Encoded images [N] -> pool features [N, D], with the weights of a quantized TFLite CNN.

    Args:
      tflite_path: the .tflite flatbuffer (MobileNetV2 1.0/224 quantized by default).
      max_pixels: decoded images may hold at most this many pixels.

    Raises:
      FileNotFoundError: no file at ``tflite_path``.
      ValueError: the flatbuffer holds an operator the float graph cannot run.

    """

    def __init__(self, tflite_path: str = DEFAULT_TFLITE_PATH,
                 max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image_backbone"):
        super().__init__(name=name)
        graph = tflite_graph.read_graph(read_tflite(tflite_path), tflite_path)
        source = graph.tensors[graph.input]
        self.image_size = (source.shape[1], source.shape[2])
        self.max_pixels = max_pixels
        self._input_scale = float(source.scale[0]) if source.scale.size else 1.0
        self._input_zero = float(source.zero_point[0]) if source.zero_point.size else 0.0
        self._graph = graph
        # One list per op of its constant inputs (kernels, biases), in op order. They enter the
        # traced graph as constants, not variables: oneDNN then reorders a convolution's filter
        # into its blocked layout once and caches it, where a variable's filter is reordered on
        # every call. A SavedModel stores them in the function that uses them.
        self._op_arrays = [
            [self._layout(op, graph.tensors[i].value)
             for i in op.inputs if i >= 0 and graph.tensors[i].value is not None]
            for op in graph.ops]
        self.feature_dim = int(graph.tensors[graph.ops[-1].output].shape[-1])

    @staticmethod
    def _layout(op: tflite_graph.Op, value: np.ndarray) -> np.ndarray:
        """TFLite [out, kh, kw, in] / [1, kh, kw, in*mult] kernels -> TensorFlow's layouts."""
        if value.ndim != 4:
            return value
        if op.kind == tflite_graph.CONV_2D:
            return value.transpose(1, 2, 3, 0)
        return value.reshape(value.shape[1], value.shape[2], -1, 1)

    def _run_op(self, op: tflite_graph.Op, arrays: list[np.ndarray],
                values: dict[int, tf.Tensor]) -> tf.Tensor:
        """One op in float32; the output is clamped to its activation and quantized range."""
        x = values[op.inputs[0]]
        strides = [1, *op.strides, 1]
        weights = [tf.constant(array) for array in arrays]
        if op.kind == tflite_graph.CONV_2D:
            y = tf.nn.bias_add(tf.nn.conv2d(x, weights[0], strides, op.padding), weights[1])
        elif op.kind == tflite_graph.DEPTHWISE_CONV_2D:
            y = tf.nn.bias_add(tf.nn.depthwise_conv2d(x, weights[0], strides, op.padding),
                               weights[1])
        elif op.kind == tflite_graph.ADD:
            y = x + values[op.inputs[1]]
        elif op.kind == tflite_graph.QUANTIZE:
            y = x
        else:
            y = tf.nn.avg_pool2d(x, [1, *op.filter_size, 1], strides, op.padding)
        low, high = self._graph.tensors[op.output].real_range
        return _clamp(y, max(low, op.activation[0]), min(high, op.activation[1]))

    def features(self, pixels: tf.Tensor) -> tf.Tensor:
        """uint8-valued float32 RGB [N, H, W, 3] (0..255) -> pool features [N, D]."""
        values = {self._graph.input: (pixels - self._input_zero) * self._input_scale}
        for op, arrays in zip(self._graph.ops, self._op_arrays, strict=True):
            values[op.output] = self._run_op(op, arrays, values)
        return tf.reshape(values[self._graph.ops[-1].output], [-1, self.feature_dim])

    def decode(self, images: tf.Tensor) -> tf.Tensor:
        """Encoded images [N] -> float32 RGB [N, H, W, 3] at the model's input size."""
        items = tf.range(tf.size(images, out_type=tf.int64))
        return tf.map_fn(
            lambda args: decode_image(args[0], args[1], self.image_size, self.max_pixels),
            (images, items), fn_output_signature=tf.TensorSpec([*self.image_size, 3],
                                                               tf.float32))

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Encoded JPEG/PNG bytes [N] -> pool features [N, D]."""
        return self.features(self.decode(images))
