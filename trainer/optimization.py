"""The Trainer's optimizer: Adam, step schedule, global-norm clipping, a lower encoder rate.

The fine-tuned layers of a pretrained text encoder train at a lower learning rate. A tf_keras
optimizer has one learning rate, and scaling a group's gradients does not lower its step:
Adam's first update is ``lr * g / (|g| + eps)``, whatever the scale of g. So ``EncoderRateAdam``
keeps two Adams over disjoint variable groups (the encoder's at ``learning_rate *
minilm_lr_multiplier``), fed from one gradient computation that is clipped once by the global
norm over all variables, as ``global_clipnorm`` does. Towers without such an encoder keep the
single ``keras.optimizers.Adam(schedule, global_clipnorm=clip_norm)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import tensorflow as tf
import tf_keras as keras

from trainer.config import TrainerConfig


def step_schedule(config: TrainerConfig, steps_per_epoch: int,
                  scale: float = 1.0) -> keras.optimizers.schedules.LearningRateSchedule:
    """``learning_rate * scale``, times ``lr_decay_factor`` after ``decay_epoch`` epochs."""
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [config.decay_epoch * steps_per_epoch],
        [config.learning_rate * scale, config.learning_rate * config.lr_decay_factor * scale])


class EncoderRateAdam:
    """Adam at ``schedule``, except ``encoder_variables`` at ``encoder_schedule``.

    Offers what the training loop uses of a Keras optimizer: ``apply_gradients``,
    ``iterations`` and ``learning_rate`` (the latter two those of the main rate).
    """

    def __init__(self, schedule, encoder_schedule, encoder_variables: Sequence[tf.Variable],
                 clip_norm: float | None):
        self.main = keras.optimizers.Adam(schedule)
        self.encoder = keras.optimizers.Adam(encoder_schedule)
        self.clip_norm = clip_norm
        self._encoder_refs = frozenset(v.ref() for v in encoder_variables)

    @property
    def iterations(self) -> tf.Variable:
        """Steps applied so far."""
        return self.main.iterations

    @property
    def learning_rate(self) -> tf.Tensor:
        """The current main (non-encoder) learning rate."""
        return self.main.learning_rate

    def apply_gradients(self, grads_and_vars: Iterable[tuple[tf.Tensor, tf.Variable]]) -> None:
        """Clips all gradients by their global norm, then steps each group with its Adam."""
        pairs = list(grads_and_vars)
        gradients = [gradient for gradient, _ in pairs]
        if self.clip_norm is not None:
            gradients, _ = tf.clip_by_global_norm(gradients, self.clip_norm)
        groups: dict[bool, list] = {True: [], False: []}
        for gradient, (_, variable) in zip(gradients, pairs, strict=True):
            groups[variable.ref() in self._encoder_refs].append((gradient, variable))
        self.encoder.apply_gradients(groups[True])
        self.main.apply_gradients(groups[False])


def make_optimizer(config: TrainerConfig, schedule, steps_per_epoch: int,
                   encoder_variables: Sequence[tf.Variable] = ()):
    """The optimizer of a run: one Adam, or ``EncoderRateAdam`` when encoder variables train.

    Args:
        config: ``learning_rate``, the decay, ``clip_norm`` and ``minilm_lr_multiplier``.
        schedule: the main learning-rate schedule (``step_schedule(config, steps_per_epoch)``).
        steps_per_epoch: optimizer steps per epoch (places the encoder rate's decay step).
        encoder_variables: trainable variables of a pretrained encoder (none for towers
            trained from scratch).

    Returns:
        ``keras.optimizers.Adam(schedule, global_clipnorm=clip_norm)`` without encoder
        variables, else an ``EncoderRateAdam`` whose encoder rate is scaled by
        ``minilm_lr_multiplier``.

    """
    if not encoder_variables:
        return keras.optimizers.Adam(schedule, global_clipnorm=config.clip_norm)
    encoder_schedule = step_schedule(config, steps_per_epoch, config.minilm_lr_multiplier)
    return EncoderRateAdam(schedule, encoder_schedule, encoder_variables, config.clip_norm)
