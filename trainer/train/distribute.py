"""Training on several replicas: the ``tf.distribute`` strategy, who exports, cross-replica tensors.

``strategy_for(config)`` picks the strategy from the environment (docs/distributed.md):

- ``TF_CONFIG`` naming a cluster of two or more tasks (how TFX's Vertex AI Trainer, Kubernetes
  jobs and ``trainer.distribute_run`` start workers): ``MultiWorkerMirroredStrategy``;
- ``trainer.strategy=mirrored``: ``MirroredStrategy`` over this machine's devices (opt-in, since
  a machine with one GPU would otherwise change how a default run reduces its gradients);
- otherwise TensorFlow's default strategy: one process, one replica, the single-process
  training unchanged.

``TF_CONFIG`` is validated before any strategy is built, so a typo fails at once with the key
instead of hanging on a cluster that never forms. Strategy first: every entry point (``run_fn``,
``benchmarks.train_quality``) calls ``strategy_for`` before any other TensorFlow op, since a
cluster's strategy configures TensorFlow's collective ops, which TensorFlow accepts only before its
runtime has started; later calls in the process return the same strategy.

``trainer.batch_size`` is the global batch: each of N replicas takes its consecutive slice of
B / N pairs, so N replicas see the same data order as one process.

Cross-replica negatives. ``gather_with_gradient`` concatenates every replica's rows (replica
order) and sends each replica the gradient of its own rows summed over all replicas' losses
(all-reduce, then the replica's slice): with each replica's loss divided by N, the gradients
that the optimizer sums over replicas are those of one process on the global batch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import tensorflow as tf

from trainer.config import TrainerConfig

TASK_TYPES = ("chief", "worker")


def parse_tf_config(text: str | None) -> dict[str, Any] | None:
    """The validated ``TF_CONFIG`` JSON, or None when it is unset or names no cluster.

    Raises:
        ValueError: malformed JSON, a cluster that is not ``{type: ["host:port", ...]}``, or a
            missing or out-of-range ``task``; the message names the key.

    """
    if not text or not text.strip():
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG: not valid JSON ({error})") from error
    if not isinstance(values, Mapping):
        raise ValueError("TF_CONFIG: must be a JSON object with 'cluster' and 'task'")
    cluster = values.get("cluster")
    if not cluster:
        return None
    _check_cluster(cluster)
    _check_task(values.get("task"), cluster)
    return dict(values)


def _check_cluster(cluster: Any) -> None:
    if not isinstance(cluster, Mapping):
        raise ValueError("TF_CONFIG: cluster: must map task types to lists of 'host:port'")
    for kind, addresses in cluster.items():
        if kind not in TASK_TYPES:
            raise ValueError(f"TF_CONFIG: cluster.{kind}: unsupported task type; use "
                             f"{TASK_TYPES}")
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and ":" in a for a in addresses)):
            raise ValueError(f"TF_CONFIG: cluster.{kind}: must be a non-empty list of "
                             f"'host:port', got {addresses!r}")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError("TF_CONFIG: cluster.chief: at most one chief")


def _check_task(task: Any, cluster: Mapping[str, list]) -> None:
    if not isinstance(task, Mapping):
        raise ValueError("TF_CONFIG: task: missing; each process needs {'type', 'index'}")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise ValueError(f"TF_CONFIG: task.type: {kind!r} is not a task type of the cluster "
                         f"{sorted(cluster)}")
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"TF_CONFIG: task.index: must be an integer, got {index!r}")
    if not 0 <= index < len(cluster[kind]):
        raise ValueError(f"TF_CONFIG: task.index: {index} is out of range for the "
                         f"{len(cluster[kind])} '{kind}' task(s)")


def tf_config() -> dict[str, Any] | None:
    """``parse_tf_config`` of this process's ``TF_CONFIG``."""
    return parse_tf_config(os.environ.get("TF_CONFIG"))


def is_chief(cluster_config: Mapping[str, Any] | None) -> bool:
    """Whether this task exports: the chief, else worker 0 of a chief-less cluster."""
    if cluster_config is None:
        return True
    task, cluster = cluster_config["task"], cluster_config["cluster"]
    if "chief" in cluster:
        return task["type"] == "chief"
    return task["index"] == 0


def strategy_for(config: TrainerConfig) -> tf.distribute.Strategy:
    """The strategy of this process (module docstring); validates ``TF_CONFIG`` first.

    Call it before any other TensorFlow op of the process (module docstring): under a cluster
    ``TF_CONFIG`` a later first call fails with TensorFlow's "Collective ops must be configured
    at program startup".
    """
    cluster_config = tf_config()
    tasks = 0 if cluster_config is None else sum(map(len, cluster_config["cluster"].values()))
    if tasks > 1:
        return _multi_worker_strategy(os.environ["TF_CONFIG"])
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@functools.cache
def _multi_worker_strategy(cluster_tf_config: str) -> tf.distribute.Strategy:
    """The process's one ``MultiWorkerMirroredStrategy`` for ``cluster_tf_config``.

    A second one would configure the collective ops and start this task's server again, which
    TensorFlow refuses once its runtime runs: the entry point's strategy is the one training uses.
    """
    del cluster_tf_config  # the cache key: the strategy reads TF_CONFIG itself
    return tf.distribute.MultiWorkerMirroredStrategy()


def config_hash(config: TrainerConfig) -> int:
    """A 63-bit digest of every field of ``config`` (workers compare them)."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def check_same_config(strategy: tf.distribute.Strategy, config: TrainerConfig) -> None:
    """Fails on every replica unless all replicas run the same ``TrainerConfig``.

    Raises:
        ValueError: the replicas' configuration digests differ.

    """
    if strategy.num_replicas_in_sync == 1:
        return
    digest = tf.constant([config_hash(config)], tf.int64)

    @tf.function
    def gather_all() -> tf.Tensor:
        return strategy.run(lambda: all_gather(tf.distribute.get_replica_context(), digest))

    digests = strategy.experimental_local_results(gather_all())[0].numpy().tolist()
    if len(set(digests)) > 1:
        raise ValueError(f"the {len(digests)} workers disagree on the trainer configuration "
                         f"(digests by replica: {digests}); start every worker with the same "
                         "custom_config")


def split_batch(strategy: tf.distribute.Strategy, batch: tf.Tensor):
    """Each replica's consecutive slice of a global batch [B] (B divisible by the replicas)."""
    replicas = strategy.num_replicas_in_sync

    def local(context: tf.distribute.experimental.ValueContext) -> tf.Tensor:
        size = tf.shape(batch)[0] // replicas
        return batch[context.replica_id_in_sync_group * size:
                     (context.replica_id_in_sync_group + 1) * size]

    return strategy.experimental_distribute_values_from_function(local)


def all_gather(context: tf.distribute.ReplicaContext, value: tf.Tensor) -> tf.Tensor:
    """``context.all_gather(value, axis=0)`` of a tensor placed on the replica's device.

    A collective needs its input's device: ``MultiWorkerMirroredStrategy`` traces a worker's
    one replica without a device scope, and rejects the unplaced tensor.
    """
    with tf.device(_device(context)):
        return context.all_gather(tf.identity(value), axis=0)


def _device(context: tf.distribute.ReplicaContext) -> str:
    """The device of this replica (a worker of ``MultiWorkerMirroredStrategy`` has one)."""
    devices = context.strategy.extended.worker_devices
    return devices[0] if len(devices) == 1 else context.devices[0]


def gather(value: tf.Tensor) -> tf.Tensor:
    """Every replica's ``value`` [b, ...] concatenated in replica order [N * b, ...], no gradient.

    In a one-replica context (no strategy), ``value`` itself.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return all_gather(context, value)


def gather_with_gradient(value: tf.Tensor) -> tf.Tensor:
    """``gather(value)`` whose gradient flows back to the replica that produced each row.

    Backward: the upstream gradient [N * b, ...] of this replica's loss is summed over all
    replicas, and each replica keeps the rows it contributed. In a one-replica context,
    ``value`` itself.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value

    @tf.custom_gradient
    def gathered(local: tf.Tensor):
        def backward(upstream: tf.Tensor) -> tf.Tensor:
            with tf.device(_device(context)):
                total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(upstream))
            size = tf.shape(local)[0]
            start = tf.cast(context.replica_id_in_sync_group, tf.int32) * size
            return total[start:start + size]

        return all_gather(context, local), backward

    return gathered(value)


def replica_variable(initial: tf.Tensor, name: str) -> tf.Variable:
    """A non-trainable variable of which each replica keeps and updates its own copy.

    ``ON_READ``: writes in a replica context change that replica's copy alone, with no
    collective; saved and read across replicas as replica 0's. Without a strategy, a plain
    variable.
    """
    return tf.Variable(initial, trainable=False, name=name,
                       synchronization=tf.VariableSynchronization.ON_READ,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def num_replicas() -> int:
    """Replicas of the current strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


@contextmanager
def worker_dir(path: str, chief: bool) -> Iterator[str]:
    """``path`` on the chief; elsewhere a temporary folder of this worker, removed afterwards.

    Every worker takes part in writing checkpoints and the SavedModel (their collectives need
    every worker), but only the chief's copies are kept.
    """
    if chief:
        yield path
        return
    temporary = tempfile.mkdtemp(prefix="xmodal_worker_")
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
