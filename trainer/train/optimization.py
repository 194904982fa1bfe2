"""The Trainer's optimizer: Adam, step schedule, global-norm clipping, a lower encoder rate.

The fine-tuned layers of a pretrained text encoder train at a lower learning rate. A tf_keras
optimizer has one learning rate, and scaling a group's gradients does not lower its step:
Adam's first update is ``lr * g / (|g| + eps)``, whatever the scale of g. So ``EncoderRateAdam``
keeps two Adams over disjoint variable groups (the encoder's at ``learning_rate *
minilm_lr_multiplier``), fed from one gradient computation that is clipped once by the global
norm over all variables, as ``global_clipnorm`` does. Towers without such an encoder keep the
single ``FusedAdam(schedule, global_clipnorm=clip_norm)`` (Keras' Adam, fused kernel).
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


class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose dense step is TensorFlow's fused ``ResourceApplyAdam``.

    Same formula (``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``) in one kernel per variable
    instead of about ten element-wise ops, each a pass over the variable: a visible share of a
    short in-batch step on the Trainer's linear towers. Equal to Keras' to float32 rounding
    (``1 - b1`` is taken in float32 here, in float64 by Keras). Sparse gradients, AMSGrad and
    adaptive epsilon keep Keras' own update.
    """

    def update_step(self, gradient, variable) -> None:
        """Applies one Adam step to ``variable`` (fused when the gradient is dense)."""
        if isinstance(gradient, tf.IndexedSlices) or self.amsgrad or self.adaptive_epsilon:
            super().update_step(gradient, variable)
            return
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._index_dict[self._var_key(variable)]
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle,
            v=self._velocities[index].handle, beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(self.learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=gradient)


class EncoderRateAdam:
    """Adam at ``schedule``, except ``encoder_variables`` at ``encoder_schedule``.

    Offers what the training loop uses of a Keras optimizer: ``apply_gradients``,
    ``iterations`` and ``learning_rate`` (the latter two those of the main rate).
    """

    def __init__(self, schedule, encoder_schedule, encoder_variables: Sequence[tf.Variable],
                 clip_norm: float | None):
        self.main = FusedAdam(schedule)
        self.encoder = FusedAdam(encoder_schedule)
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
        ``FusedAdam(schedule, global_clipnorm=clip_norm)`` without encoder
        variables, else an ``EncoderRateAdam`` whose encoder rate is scaled by
        ``minilm_lr_multiplier``.

    """
    if not encoder_variables:
        return FusedAdam(schedule, global_clipnorm=config.clip_norm)
    encoder_schedule = step_schedule(config, steps_per_epoch, config.minilm_lr_multiplier)
    return EncoderRateAdam(schedule, encoder_schedule, encoder_variables, config.clip_norm)
