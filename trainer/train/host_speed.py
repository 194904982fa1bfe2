"""How fast this host multiplies matrices: information for the run's output, never a setting.

Fine-tuning the top MiniLM layer costs a matmul-bound step: on a host whose float32 matmul runs
at 44 GFLOP/s (AVX2 only) a step takes about five times as long as at 300 GFLOP/s (AVX-512/AMX).
The Trainer prints the rate at its start next to the setting it trains, so that a slow run can
be told apart from a slow host; the configuration alone decides what is trained. On a slow host
``trainer.minilm_trainable_layers=0`` (the frozen encoder) is the faster option a user picks
(docs/minilm.md).
"""

from __future__ import annotations

import dataclasses
import os
import time

from trainer.config import TrainerConfig

PROBE_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class MatmulRate:
    """A float32 matmul rate of this host, in GFLOP/s.

    Attributes:
        cores: FLOP per second of the process's CPU time, times the cores it may use: what the
            hardware delivers, whatever else runs on a shared host.
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

    The CPU-time rate is reported because on a shared host other processes stretch the
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


def describe_setting(config: TrainerConfig, gflops: float) -> str:
    """One line naming the host's rate and the text tower that this configuration trains.

    Args:
        config: the configured hyperparameters, trained as they are whatever ``gflops`` says.
        gflops: the host's float32 matmul rate (``MatmulRate.cores``).

    """
    tower = repr(config.text_tower)
    if config.text_tower == "minilm":
        tower = (f"MiniLM with the top {config.minilm_trainable_layers} layer(s) fine-tuned"
                 if config.minilm_trainable_layers else "MiniLM, frozen encoder")
    return f"host: {gflops:.0f} GFLOP/s; text tower {tower}, as configured"
