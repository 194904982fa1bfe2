"""The precision of the training step's MiniLM matmuls: bfloat16 where the CPU has it natively.

A CPU with AMX (``amx_bf16``) or AVX512_BF16 (``avx512_bf16``) multiplies bfloat16 matrices
with float32 accumulation at two (AVX512_BF16) to several (AMX) times its float32 rate; other
CPUs emulate it, slower than float32. ``trainer.precision`` picks it: ``auto`` (bfloat16 when
``/proc/cpuinfo`` lists one of those flags and ``ONEDNN_MAX_CPU_ISA`` does not keep oneDNN
below them: detected, not timed), ``float32`` or ``bfloat16``.

The policy covers the one-off pass of the frozen MiniLM bottom over the training split
(``trainer.inputs.frozen_prefix``) and, in every step over that cache, the fine-tuned MiniLM
layers and the text projection (``trainer.model.unpadded``): nearly all of the default Trainer's
FLOPs. The per-epoch evaluation that picks the kept epoch stays float32, so that it ranks the
epochs by the rsum of the towers as they are exported (float32, like the Evaluator's). The
image tower stays float32, so that no other configuration's results depend on the host's CPU,
and so do the exported towers.
Under a bfloat16 ``Policy`` only the matmuls run in bfloat16: their operands are cast right at
the product and the product is cast back to float32. Variables, biases, LayerNorm, softmax,
GELU, residuals, the tower outputs (so the similarity scores that mining ranks), the loss and
the optimizer's state stay float32, and each cast's gradient is a cast back, so every
variable's gradient is float32. Explicit casts rather than a Keras mixed-precision policy:
Keras fixes a layer's policy when the layer is built, which would have to happen before the
pretrained weights are loaded, and would move the exported towers (and serving) to bfloat16
too; here the training computation alone changes, and the towers, checkpoints and exports stay
float32.

This module reads the CPU flags without TensorFlow, so configurations are validated before it
loads; the matmul helpers import it when called.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping

PRECISIONS = ("auto", "float32", "bfloat16")  # TrainerConfig.precision
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of a native bfloat16 matmul
CPUINFO = pathlib.Path("/proc/cpuinfo")
ONEDNN_ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
# oneDNN instruction-set caps without a bfloat16 dot product.
NO_BF16_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                "AVX512_CORE_VNNI")


def cpu_flags(cpuinfo: pathlib.Path = CPUINFO) -> frozenset[str]:
    """The feature flags of the first processor listed in ``cpuinfo`` (empty if unreadable).

    A host without ``/proc/cpuinfo`` (not Linux) reports no flags: it is treated as having no
    native bfloat16, the safe side.
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: frozenset[str]) -> str | None:
    """The first flag of ``BF16_FLAGS`` in ``flags`` (AMX before AVX512_BF16), else None."""
    return next((flag for flag in BF16_FLAGS if flag in flags), None)


def onednn_cap(environ: Mapping[str, str]) -> str | None:
    """``ONEDNN_MAX_CPU_ISA`` when it keeps oneDNN below its bfloat16 instructions, else None.

    TensorFlow's CPU matmuls run through oneDNN, which uses no instruction set above that
    variable's: capped at one of ``NO_BF16_ISAS`` it emulates bfloat16 whatever the CPU has.
    """
    cap = environ.get(ONEDNN_ISA_VARIABLE, "").strip().upper()
    return cap if cap in NO_BF16_ISAS else None


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which dtype the towers' matmuls run in, and why.

    Attributes:
        compute: ``"float32"`` or ``"bfloat16"``: the dtype of the matmul operands.
        reason: one line saying how the setting and the CPU chose it (for the Trainer's log).

    """

    compute: str
    reason: str

    def __post_init__(self):
        if self.compute not in ("float32", "bfloat16"):
            raise ValueError(f"Policy.compute={self.compute!r}: must be float32 or bfloat16")

    @property
    def bf16(self) -> bool:
        """Whether the matmuls run in bfloat16."""
        return self.compute == "bfloat16"

    def cast(self, x):
        """``x`` in the compute dtype (unchanged, no op, under float32)."""
        import tensorflow as tf

        return tf.cast(x, self.compute)

    def matmul(self, a, b, transpose_b: bool = False):
        """``a @ b`` (``b`` transposed if asked), operands in the compute dtype; float32 out.

        With float32 operands this is ``tf.matmul`` itself, the op ``keras.layers.Dense``
        runs on 2-D inputs: the same values as the layer's own call.
        """
        import tensorflow as tf

        product = tf.matmul(self.cast(a), self.cast(b), transpose_b=transpose_b)
        return tf.cast(product, tf.float32)

    def dense(self, layer, x):
        """A built ``keras.layers.Dense`` applied to ``x`` [N, in] with this policy's matmul.

        Reads the layer's own variables (so their gradients are the layer's); the bias and the
        activation apply in float32.
        """
        import tensorflow as tf

        outputs = self.matmul(x, layer.kernel)
        if layer.use_bias:
            outputs = tf.nn.bias_add(outputs, layer.bias)
        return outputs if layer.activation is None else layer.activation(outputs)


FLOAT32 = Policy("float32", "trainer.precision=float32")


def resolve(setting: str, cpuinfo: pathlib.Path = CPUINFO,
            environ: Mapping[str, str] = os.environ) -> Policy:
    """The policy of ``trainer.precision`` = ``setting`` on the CPU that ``cpuinfo`` describes.

    ``auto`` is bfloat16 where the CPU has a native bfloat16 matmul that oneDNN may use (no
    ``onednn_cap`` in ``environ``), else float32; ``float32`` and ``bfloat16`` are taken as
    given (a bfloat16 run without it is emulated, slower than float32, and the reason says so).

    Raises:
        ValueError: ``setting`` is not one of ``PRECISIONS``.

    """
    if setting not in PRECISIONS:
        raise ValueError(f"trainer.precision={setting!r}: must be one of {PRECISIONS}")
    flag = native_bf16(cpu_flags(cpuinfo))
    cap = onednn_cap(environ)
    if flag and cap:
        cpu = f"the CPU has {flag} but {ONEDNN_ISA_VARIABLE}={cap} keeps oneDNN from it"
    else:
        cpu = (f"the CPU has {flag}" if flag
               else f"the CPU has none of {', '.join(BF16_FLAGS)} ({cpuinfo})")
    native = flag is not None and cap is None
    if setting == "float32":
        return FLOAT32
    if setting == "bfloat16":
        note = "" if native else ": emulated, slower than float32"
        return Policy("bfloat16", f"trainer.precision=bfloat16 ({cpu}{note})")
    if native:
        return Policy("bfloat16", f"trainer.precision=auto: bfloat16 matmuls, {cpu}")
    return Policy("float32", f"trainer.precision=auto: float32, {cpu}")
