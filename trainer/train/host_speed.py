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
import os
import time

from trainer.config import TrainerConfig

# Below this 4096² float32 matmul rate a fine-tuned MiniLM default would overrun the budget.
SLOW_HOST_GFLOPS = 150.0
PROBE_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class MatmulRate:
    """A float32 matmul rate of this host, in GFLOP/s.

    Attributes:
        cores: FLOP per second of the process's CPU time, times the cores it may use: what the
            hardware delivers, whatever else runs on a shared host (the setting's criterion).
        wall: FLOP per wall-clock second: what this process got while the probe ran.

    """

    cores: float
    wall: float

    def describe(self) -> str:
        """One line with both rates and the 1-minute load average."""
        return (f"float32 {PROBE_SIZE}² matmul {self.cores:.0f} GFLOP/s on the cores' time "
                f"({self.wall:.0f} wall-clock, load {os.getloadavg()[0]:.1f})")


def matmul_rate(size: int = PROBE_SIZE, repeats: int = 3) -> MatmulRate:
    """The best of ``repeats`` timed float32 ``size``² matmuls, after one untimed run.

    The CPU-time rate is the criterion because on a shared host other processes stretch the
    wall time of the probe but not the CPU time it needs; the best run, because the question is
    what the hardware can do, not how busy it was for two seconds. Its ops are TensorFlow's
    first in a fresh process: under a cluster ``TF_CONFIG``, call ``distribute.strategy_for``
    before it.
    """
    import tensorflow as tf

    a = tf.random.normal([size, size], seed=1)
    b = tf.random.normal([size, size], seed=2)
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)[:1, :1]))
    product().numpy()  # trace and warm up
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        product().numpy()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    flops = 2 * size**3 / 1e9
    cores = len(os.sched_getaffinity(0))
    return MatmulRate(cores=flops / max(best_cpu, 1e-9) * cores, wall=flops / best_wall)


def setting_for_host(config: TrainerConfig, gflops: float) -> tuple[TrainerConfig, str]:
    """The configuration to train on a host whose matmul runs at ``gflops``, and why.

    Only a fine-tuned ``minilm`` tower with ``slow_host_fallback`` on is changed, and only
    below ``SLOW_HOST_GFLOPS``: it then trains with the frozen encoder.

    Args:
        config: the configured hyperparameters.
        gflops: the host's float32 matmul rate (``MatmulRate.cores``).

    Returns:
        (the configuration to use, a one-line message naming the setting and the reason).

    """
    fine_tuned = config.text_tower == "minilm" and config.minilm_trainable_layers > 0
    rate = f"{gflops:.0f} GFLOP/s"
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
