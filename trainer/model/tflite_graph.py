"""Reads a quantized TFLite convolutional network into float weights, op by op.

The flatbuffer is parsed with TensorFlow's generated schema reader, so strides, padding and fused
activations come from each operator's options and weights from its input tensors: layers are
identified by graph position (operator order and tensor indices), never by tensor names.
Quantized tensors are dequantized as ``real = scale * (q - zero_point)``, per tensor or per
channel along the tensor's quantized dimension.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

CONV_2D = "CONV_2D"
DEPTHWISE_CONV_2D = "DEPTHWISE_CONV_2D"
ADD = "ADD"
AVERAGE_POOL_2D = "AVERAGE_POOL_2D"
QUANTIZE = "QUANTIZE"  # a change of integer grid only: the identity on real values
SUPPORTED_OPS = (CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, QUANTIZE)

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
_NUMPY_TYPES = {schema.TensorType.UINT8: np.uint8, schema.TensorType.INT8: np.int8,
                schema.TensorType.INT32: np.int32, schema.TensorType.FLOAT32: np.float32}
# Fused activations as (low, high) clamps of the op's real-valued output.
_ACTIVATION_BOUNDS = {
    schema.ActivationFunctionType.NONE: (-np.inf, np.inf),
    schema.ActivationFunctionType.RELU: (0.0, np.inf),
    schema.ActivationFunctionType.RELU6: (0.0, 6.0),
    schema.ActivationFunctionType.RELU_N1_TO_1: (-1.0, 1.0),
}


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One tensor of the flatbuffer: shape, quantization and (for constants) its real values.

    Attributes:
      index: the tensor's index in the subgraph.
      shape: its static shape.
      scale: per-tensor ([1]) or per-channel ([C]) quantization scales; empty for float tensors.
      zero_point: matching zero points.
      quantized_dim: the channel axis of per-channel quantization.
      int_range: (min, max) of the integer type (uint8 0..255, int8 -128..127).
      value: the dequantized float32 constant, or None for activations.

    """

    index: int
    shape: tuple[int, ...]
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dim: int
    int_range: tuple[int, int]
    value: np.ndarray | None

    @property
    def real_range(self) -> tuple[float, float]:
        """(min, max) real value a quantized activation can hold; unbounded for float ones."""
        if self.scale.size != 1 or self.int_range == (0, 0):
            return -np.inf, np.inf
        scale, zero = float(self.scale[0]), float(self.zero_point[0])
        return scale * (self.int_range[0] - zero), scale * (self.int_range[1] - zero)


@dataclasses.dataclass(frozen=True)
class Op:
    """One operator: its kind, tensor indices and the options the float graph needs.

    Attributes:
      kind: the builtin operator name (``CONV_2D``, ...).
      inputs: input tensor indices (weights and bias included; -1 = absent).
      output: the output tensor index.
      strides: (height, width) strides; (1, 1) for ADD.
      padding: ``"SAME"`` or ``"VALID"``.
      filter_size: (height, width) of an average pool's window.
      activation: the fused activation's (low, high) clamp.

    """

    kind: str
    inputs: tuple[int, ...]
    output: int
    strides: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    filter_size: tuple[int, int] = (1, 1)
    activation: tuple[float, float] = (-np.inf, np.inf)


@dataclasses.dataclass(frozen=True)
class Graph:
    """The first subgraph: its tensors by index, its ops in execution order, its input."""

    tensors: dict[int, Tensor]
    ops: tuple[Op, ...]
    input: int


def _dequantize(raw: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    """``scale * (q - zero_point)``, broadcasting per-channel parameters along ``axis``."""
    shape = [1] * raw.ndim
    if scale.size > 1:
        shape[axis] = scale.size
    values = (raw.astype(np.float64) - zero.reshape(shape)) * scale.reshape(shape)
    return values.astype(np.float32)


def _tensor(model: schema.Model, subgraph: schema.SubGraph, index: int) -> Tensor:
    tensor = subgraph.Tensors(index)
    quant = tensor.Quantization()
    scale = np.asarray(quant.ScaleAsNumpy() if quant and quant.ScaleLength() else [], np.float64)
    zero = np.asarray(quant.ZeroPointAsNumpy() if quant and quant.ZeroPointLength() else [],
                      np.float64)
    axis = quant.QuantizedDimension() if quant else 0
    shape = tuple(int(v) for v in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    dtype = _NUMPY_TYPES.get(tensor.Type(), np.float32)
    int_range = (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)) if dtype in (
        np.uint8, np.int8) else (0, 0)
    value = None
    if not isinstance(data, int) and data.size:
        raw = np.frombuffer(data.tobytes(), dtype).reshape(shape)
        value = (_dequantize(raw, scale, zero if zero.size else np.zeros(1), axis)
                 if scale.size and raw.dtype != np.float32 else raw.astype(np.float32))
    return Tensor(index, shape, scale, zero, axis, int_range, value)


def _options(kind: str, operator: schema.Operator) -> dict:
    """Strides, padding, pool window and fused activation from the operator's options."""
    if kind == QUANTIZE:
        return {}
    table = operator.BuiltinOptions()
    classes = {CONV_2D: schema.Conv2DOptions, DEPTHWISE_CONV_2D: schema.DepthwiseConv2DOptions,
               ADD: schema.AddOptions, AVERAGE_POOL_2D: schema.Pool2DOptions}
    options = classes[kind]()
    options.Init(table.Bytes, table.Pos)
    values = {"activation": _ACTIVATION_BOUNDS[options.FusedActivationFunction()]}
    if kind != ADD:
        values["strides"] = (options.StrideH(), options.StrideW())
        values["padding"] = "SAME" if options.Padding() == schema.Padding.SAME else "VALID"
    if kind == AVERAGE_POOL_2D:
        values["filter_size"] = (options.FilterHeight(), options.FilterWidth())
    if kind in (CONV_2D, DEPTHWISE_CONV_2D) and (options.DilationHFactor(),
                                                 options.DilationWFactor()) != (1, 1):
        raise ValueError(f"{kind}: dilated convolutions are not supported")
    return values


def read_graph(content: bytes, where: str, stop_after: str = AVERAGE_POOL_2D) -> Graph:
    """Parses ``content`` up to and including the first ``stop_after`` operator.

    Args:
      content: the .tflite flatbuffer bytes.
      where: the file name, for error messages.
      stop_after: the operator kind that ends the part to read (the feature output).

    Returns:
      The graph with every tensor that its ops read or write.

    Raises:
      ValueError: an operator before ``stop_after`` that the float graph cannot run, or no
        ``stop_after`` operator at all.

    """
    model = schema.Model.GetRootAs(content, 0)
    subgraph = model.Subgraphs(0)
    ops, indices = [], {int(subgraph.Inputs(0))}
    for position in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(position)
        code = model.OperatorCodes(operator.OpcodeIndex())
        kind = _OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        if kind not in SUPPORTED_OPS:
            raise ValueError(f"{where}: operator {position} is {kind}; the float graph runs "
                             f"only {SUPPORTED_OPS} before the {stop_after} output")
        inputs = tuple(int(i) for i in operator.InputsAsNumpy())
        output = int(operator.OutputsAsNumpy()[0])
        ops.append(Op(kind, inputs, output, **_options(kind, operator)))
        indices.update(i for i in inputs if i >= 0)
        indices.add(output)
        if kind == stop_after:
            tensors = {i: _tensor(model, subgraph, i) for i in sorted(indices)}
            return Graph(tensors, tuple(ops), int(subgraph.Inputs(0)))
    raise ValueError(f"{where}: no {stop_after} operator")
