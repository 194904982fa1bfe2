"""Trainer hyperparameters: a frozen, validated dataclass built from the Trainer's custom_config."""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Mapping
from typing import Any

from trainer.model.precision import PRECISIONS

# The triplet loss kinds of ``trainer.losses``, named here so that configuration checks need
# no TensorFlow.
LOSS_KINDS = ("sh", "hn", "fhn", "mhn")

# The quantized MobileNetV2 1.0/224 that produced flickr8k/features/mobilenet_v2.npy: the image
# backbone's default weights (``trainer.model.image_backbone``), named here so that the
# configuration is
# validated without importing TensorFlow.
DEFAULT_TFLITE_PATH = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..",
    "shared", "models", "mobilenet_v2_1.0_224_quant.tflite"))
MINING_KINDS = ("in_batch", "global")
MINING_MODES = ("none", "in_batch", "exact", "bank")  # TrainerConfig.mining_mode
IMAGE_TOWERS = ("linear", "mlp")
TEXT_TOWERS = ("gru", "mean", "linear", "minilm")  # "linear" reads caption_features
INPUT_MODES = ("auto", "memory", "stream")  # TrainerConfig.input (docs/input.md)
# Mining modes that score every training row, so they need the whole split in memory.
MEMORY_MINING_MODES = ("exact", "bank")
STRATEGIES = ("auto", "mirrored")  # TrainerConfig.strategy (trainer.train.distribute)
_CHOICES = {
    "input": INPUT_MODES,
    "loss": LOSS_KINDS,
    "mining": MINING_KINDS,
    "image_tower": IMAGE_TOWERS,
    "text_tower": TEXT_TOWERS,
    "strategy": STRATEGIES,
    "precision": PRECISIONS,
}
_POSITIVE = ("embedding_dim", "word_dim", "gru_units", "mlp_hidden", "epochs", "batch_size",
             "learning_rate", "minilm_lr_multiplier", "refresh_steps", "mining_chunk_size",
             "eval_batch_size", "log_every_steps", "memory_budget_gb", "shuffle_buffer")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Hyperparameters of ``run_fn``.

    The defaults are the pipeline's default model, the best that trains within its 15-minute
    budget on a 2-core CPU on Flickr8k (docs/minilm.md): F-HN with in-batch mining for 6 epochs,
    the ``minilm`` text tower with its top layer fine-tuned, over the WordPiece ids that
    ``TransformConfig``'s defaults emit. ``pipeline.defaults.component_configs`` only derives
    from them (a token tower when the pretrained MiniLM package is missing).

    Attributes:
        loss: triplet loss kind (``trainer.losses.LOSS_KINDS``); ``fhn`` is the paper's.
        margin: cross-modal margin m (paper: 0.4).
        intra_margin: intra-modal margin m2 of ``fhn`` (paper: 0.4).
        mining: ``in_batch`` or ``global`` (hardest negatives over the whole training set);
            with ``loss`` and ``refresh_steps`` it fixes ``mining_mode``.
        refresh_steps: 1 = exact global mining: every step scores the whole training set as
            the current towers embed it (a linear tower through its head, see
            ``trainer.mining``). k > 1: an on-device bank is re-encoded every k steps, and the
            rows of each batch are refreshed at every step.
        mining_chunk_size: bank rows scored per matmul (bounds mining memory).
        image_tower: ``linear`` (bias-free Dense, the paper's best) or ``mlp``.
        text_tower: ``gru`` (bidirectional GRU over tokens), ``mean`` (masked mean of token
            embeddings), ``linear`` (over precomputed ``caption_features``) or ``minilm``
            (pretrained MiniLM-L6 over in-graph WordPiece; ``trainer/model/minilm.py``).
        minilm_trainable_layers: top MiniLM layers fine-tuned by the ``minilm`` tower (0 =
            frozen encoder, at most 6).
        minilm_lr_multiplier: the fine-tuned MiniLM layers train at ``learning_rate`` times
            this (same schedule shape, own Adam); every other variable at ``learning_rate``.
        precision: the dtype of the matmuls of a ``minilm`` tower's fine-tuned layers and
            projection in the training step (``trainer.precision``): ``auto`` (bfloat16 where
            the CPU multiplies it natively, AMX or AVX512_BF16, else float32), ``float32`` or
            ``bfloat16``. Everything else (the image tower, variables, loss, mining scores,
            optimizer state, evaluation, the exported model) stays float32.
        embedding_dim: joint embedding size d (paper: 1024).
        word_dim: token embedding size.
        gru_units: GRU units per direction.
        mlp_hidden: hidden width of the ``mlp`` image tower.
        dropout: dropout rate on tower inputs during training.
        epochs: training epochs.
        batch_size: pairs per step.
        learning_rate: Adam learning rate (paper: 2e-4).
        lr_decay_epoch: epoch after which the rate is multiplied by ``lr_decay_factor``;
            ``None`` = half the epochs, as in the paper.
        lr_decay_factor: the decay factor (paper: 0.1).
        clip_norm: global gradient-norm clipping; ``None`` disables it.
        early_stopping_patience: stop after this many epochs without a better eval rsum;
            ``None`` disables it.
        warm_start: initialize the towers from ``fn_args.base_model`` when one is given.
        seed: seed of TensorFlow, NumPy and Python randomness.
        eval_batch_size: batch size when embedding the eval split and refreshing the bank.
        log_every_steps: steps between TensorBoard scalar writes.
        image_backbone: the TFLite image model whose dequantized weights the exported
            ``embed_image_bytes`` signature runs (default: the shipped MobileNetV2 that
            produced the image features); empty exports no image-bytes input.
        input: how the training split is read (docs/input.md): ``memory`` (whole tables on
            the device), ``stream`` (tf.data from the transformed TFRecords, sharded per
            worker; ``in_batch`` and ``none`` mining only) or ``auto`` (``stream`` when the
            split's estimated in-memory size exceeds ``memory_budget_gb``).
        memory_budget_gb: GiB that ``auto`` lets the training split take in memory.
        shuffle_buffer: examples in the ``stream`` input's shuffle buffer.
        strategy: ``auto``: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names a
            cluster, else one process without a strategy; ``mirrored``: ``MirroredStrategy``
            over this machine's devices (``trainer.train.distribute``). ``batch_size`` stays the
            global batch either way.

    """

    loss: str = "fhn"
    margin: float = 0.4
    intra_margin: float = 0.4
    mining: str = "in_batch"
    refresh_steps: int = 1
    mining_chunk_size: int = 2048  # = trainer.mining.DEFAULT_CHUNK_SIZE
    image_tower: str = "linear"
    text_tower: str = "minilm"
    embedding_dim: int = 1024
    word_dim: int = 300
    gru_units: int = 512
    minilm_trainable_layers: int = 1
    minilm_lr_multiplier: float = 0.1
    precision: str = "auto"
    mlp_hidden: int = 2048
    dropout: float = 0.0
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 2e-4
    lr_decay_epoch: int | None = None
    lr_decay_factor: float = 0.1
    clip_norm: float | None = 2.0
    early_stopping_patience: int | None = None
    warm_start: bool = True
    seed: int = 0
    eval_batch_size: int = 1024
    log_every_steps: int = 20
    image_backbone: str = DEFAULT_TFLITE_PATH
    input: str = "auto"
    memory_budget_gb: float = 8.0
    shuffle_buffer: int = 16384
    strategy: str = "auto"

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"TrainerConfig.{field.name}={value!r}: must be a finite number")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"TrainerConfig.{name}={getattr(self, name)!r}: must be one "
                                 f"of {choices}")
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainerConfig.{name}={getattr(self, name)!r}: must be > 0")
        checks = {
            "margin": self.margin >= 0,
            "intra_margin": self.intra_margin >= 0,
            "dropout": 0 <= self.dropout < 1,
            "lr_decay_factor": 0 < self.lr_decay_factor <= 1,
            "lr_decay_epoch": self.lr_decay_epoch is None or self.lr_decay_epoch >= 0,
            "clip_norm": self.clip_norm is None or self.clip_norm > 0,
            "early_stopping_patience": (self.early_stopping_patience is None
                                        or self.early_stopping_patience >= 1),
            "batch_size": self.batch_size >= 2,
            "minilm_trainable_layers": 0 <= self.minilm_trainable_layers <= 6,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TrainerConfig.{name}={getattr(self, name)!r} is out of range")
        if self.input == "stream" and self.mining_mode in MEMORY_MINING_MODES:
            raise ValueError(f"TrainerConfig.input='stream': mining mode {self.mining_mode!r} "
                             "scores every training row and needs input 'memory' (or "
                             "mining 'in_batch')")

    @property
    def mining_mode(self) -> str:
        """How the Trainer finds hard negatives (one strategy each in ``trainer.negatives``).

        ``none`` for the ``sh`` loss (it sums over every in-batch negative); else ``in_batch``
        (the benchmarks' "fast mode"), ``exact`` (``global`` with ``refresh_steps`` 1: all
        training rows scored by the current towers at every step) or ``bank`` (``global``
        with ``refresh_steps`` > 1: stored embeddings, re-encoded every ``refresh_steps``).
        """
        if self.loss == "sh":
            return "none"
        if self.mining == "in_batch":
            return "in_batch"
        return "exact" if self.refresh_steps == 1 else "bank"

    @property
    def decay_epoch(self) -> int:
        """Epoch index from which the decayed learning rate applies."""
        return self.epochs // 2 if self.lr_decay_epoch is None else self.lr_decay_epoch

    @classmethod
    def from_dict(cls, custom_config: Mapping[str, Any] | None) -> TrainerConfig:
        """Builds a config from a (JSON-like) mapping, validating names and types.

        Args:
            custom_config: field name -> value; ``None`` or missing fields take defaults.

        Returns:
            The validated config.

        Raises:
            ValueError: unknown keys, a value of the wrong type, or an out-of-range value.

        """
        values = dict(custom_config or {})
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(values) - set(hints))
        if unknown:
            raise ValueError(f"unknown TrainerConfig keys {unknown}; known: {sorted(hints)}")
        return cls(**{name: _coerce(name, value, hints[name]) for name, value in values.items()})


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Checks ``value`` against the field type (ints are accepted for floats)."""
    allowed = typing.get_args(hint) or (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer beyond the float range
                raise ValueError(f"TrainerConfig.{name}={value!r}: must be a finite number") \
                    from None
        if kind is str and isinstance(value, str):
            return value
    raise ValueError(f"TrainerConfig.{name}={value!r}: expected {hint}")
