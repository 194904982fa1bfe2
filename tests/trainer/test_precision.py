"""trainer.model.precision: native bfloat16 is read from the CPU flags, and a policy's matmuls."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from pipeline import config as config_lib
from trainer.config import TrainerConfig
from trainer.model import precision

AVX512 = "fpu vme avx512f avx512bw avx512_bf16 avx512_vnni"
SAPPHIRE_RAPIDS = "fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8"
AVX2 = "fpu vme sse4_2 avx avx2 fma"


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: {flags}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("flags", "native"), [(AVX512, "avx512_bf16"),
                                               (SAPPHIRE_RAPIDS, "amx_bf16"), (AVX2, None)])
def test_native_bfloat16_is_read_from_the_flags(tmp_path, flags, native):
    assert precision.native_bf16(precision.cpu_flags(_cpuinfo(tmp_path, flags))) == native


def test_auto_picks_bfloat16_only_where_the_cpu_has_it(tmp_path):
    policy = precision.resolve("auto", _cpuinfo(tmp_path, AVX512), {})
    assert policy.compute == "bfloat16"
    assert policy.reason == "trainer.precision=auto: bfloat16 matmuls, the CPU has avx512_bf16"
    policy = precision.resolve("auto", _cpuinfo(tmp_path, AVX2), {})
    assert policy.compute == "float32"
    assert "none of amx_bf16, avx512_bf16" in policy.reason


@pytest.mark.parametrize("cap", ["SSE41", "avx2", "AVX512_CORE_VNNI"])
def test_a_onednn_cap_below_bfloat16_makes_auto_float32(tmp_path, cap):
    cpuinfo = _cpuinfo(tmp_path, SAPPHIRE_RAPIDS)
    policy = precision.resolve("auto", cpuinfo, {"ONEDNN_MAX_CPU_ISA": cap})
    assert policy.compute == "float32"
    assert policy.reason == ("trainer.precision=auto: float32, the CPU has amx_bf16 but "
                             f"ONEDNN_MAX_CPU_ISA={cap.upper()} keeps oneDNN from it")
    forced = precision.resolve("bfloat16", cpuinfo, {"ONEDNN_MAX_CPU_ISA": cap})
    assert forced.compute == "bfloat16" and "emulated, slower than float32" in forced.reason
    for allowing in ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL", ""):
        assert precision.resolve("auto", cpuinfo, {"ONEDNN_MAX_CPU_ISA": allowing}).bf16


def test_float32_everywhere_and_bfloat16_on_request(tmp_path):
    assert precision.resolve("float32", _cpuinfo(tmp_path, SAPPHIRE_RAPIDS)) == precision.FLOAT32
    forced = precision.resolve("bfloat16", _cpuinfo(tmp_path, AVX2))
    assert forced.compute == "bfloat16" and "emulated, slower than float32" in forced.reason


def test_a_host_without_cpuinfo_has_no_native_bfloat16(tmp_path):
    missing = tmp_path / "nothing"
    assert precision.cpu_flags(missing) == frozenset()
    assert precision.resolve("auto", missing).compute == "float32"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"trainer.precision='half': must be one of"):
        precision.resolve("half")
    with pytest.raises(ValueError, match=r"Policy.compute='float16'"):
        precision.Policy("float16", "")


def test_dense_matches_the_layer_in_float32_and_rounds_operands_in_bfloat16():
    layer = keras.layers.Dense(3, activation="relu")
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 5)), tf.float32)
    expected = layer(x).numpy()
    np.testing.assert_array_equal(precision.FLOAT32.dense(layer, x).numpy(), expected)
    low = precision.Policy("bfloat16", "test")
    got = low.dense(layer, x)
    assert got.dtype == tf.float32
    rounded = tf.cast(tf.cast(x, tf.bfloat16), tf.float32) @ tf.cast(
        tf.cast(layer.kernel, tf.bfloat16), tf.float32)
    reference = tf.nn.relu(rounded + layer.bias).numpy()
    np.testing.assert_allclose(got.numpy(), reference, atol=1e-2)  # bfloat16 output rounding
    assert np.abs(got.numpy() - expected).max() > 0
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(low.dense(layer, x))
    assert all(g.dtype == tf.float32 for g in tape.gradient(total, layer.trainable_variables))


def test_trainer_precision_is_validated_like_every_key():
    assert TrainerConfig().precision == "auto"
    assert TrainerConfig.from_dict({"precision": "bfloat16"}).precision == "bfloat16"
    with pytest.raises(ValueError, match=r"TrainerConfig.precision='half': must be one of "
                                         r"\('auto', 'float32', 'bfloat16'\)"):
        TrainerConfig.from_dict({"precision": "half"})
    with pytest.raises(ValueError, match=r"TrainerConfig.precision=16: expected"):
        TrainerConfig.from_dict({"precision": 16})
    with pytest.raises(config_lib.ConfigError, match=r"trainer.precision"):
        config_lib.from_dict({"trainer": {"precision": "half"}})
