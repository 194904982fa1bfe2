"""How fast this host multiplies matrices, and the cheaper training setting for a slow one.

Fine-tuning the top MiniLM layer costs a matmul-bound step: on a host whose float32 matmul
runs at 44 GFLOP/s (AVX2 only) a step takes about five times as long as at 300 GFLOP/s
(AVX-512/AMX), and six epochs no longer fit the pipeline's time budget. The frozen encoder
(``minilm_trainable_layers=0``) computes the encoder once per caption and then trains only the
projection, so its cost is one encoder pass over the data. The Trainer measures the rate at
its start and picks the frozen encoder below ``SLOW_HOST_GFLOPS``, saying so in its output.
"""

from __future__ import annotations

import dataclasses
import time

from trainer.config import TrainerConfig

# Below this 4096² float32 matmul rate a fine-tuned MiniLM default would overrun the budget.
SLOW_HOST_GFLOPS = 150.0
PROBE_SIZE = 4096


def matmul_gflops(size: int = PROBE_SIZE, repeats: int = 3) -> float:
    """The best float32 ``size``² matmul rate of ``repeats`` timed runs, in GFLOP/s.

    The best run, not the median: on a shared host other processes slow some runs down, and
    the question is what the hardware can do, not how busy it was for two seconds.
    """
    import tensorflow as tf

    a = tf.random.normal([size, size], seed=1)
    b = tf.random.normal([size, size], seed=2)
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)[:1, :1]))
    product().numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def setting_for_host(config: TrainerConfig, gflops: float) -> tuple[TrainerConfig, str]:
    """The configuration to train on a host whose matmul runs at ``gflops``, and why.

    Only a fine-tuned ``minilm`` tower with ``slow_host_fallback`` on is changed, and only
    below ``SLOW_HOST_GFLOPS``: it then trains with the frozen encoder.

    Args:
        config: the configured hyperparameters.
        gflops: the host's float32 matmul rate (``matmul_gflops``).

    Returns:
        (the configuration to use, a one-line message naming the setting and the reason).

    """
    fine_tuned = config.text_tower == "minilm" and config.minilm_trainable_layers > 0
    rate = f"float32 matmul {gflops:.0f} GFLOP/s"
    if not fine_tuned:
        return config, f"host: {rate}; text tower {config.text_tower!r} as configured"
    tuned = f"MiniLM with the top {config.minilm_trainable_layers} layer(s) fine-tuned"
    if gflops >= SLOW_HOST_GFLOPS:
        return config, f"host: {rate} (>= {SLOW_HOST_GFLOPS:.0f}): {tuned}, as configured"
    if not config.slow_host_fallback:
        return config, (f"host: {rate} (< {SLOW_HOST_GFLOPS:.0f}): {tuned} although slow, "
                        "since slow_host_fallback is off")
    return dataclasses.replace(config, minilm_trainable_layers=0), (
        f"host: {rate} (< {SLOW_HOST_GFLOPS:.0f}): frozen MiniLM encoder instead of {tuned}, "
        "to stay within the time budget (set trainer.slow_host_fallback=false to fine-tune)")
