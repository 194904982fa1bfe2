"""The training split on device and the two towers that embed its rows by index.

The training step, the negative strategies (``trainer.negatives.strategies``) and global mining all
embed
training rows by their index into these tables. A ``minilm`` text tower with a frozen bottom
embeds its captions through a ``trainer.inputs.frozen_prefix.FrozenPrefix`` of the split (computed
once,
``for_training``): only the tower's trained top runs per step, on the batch's real tokens
(``trainer.model.unpadded.FlatPrefix``) in the matmul precision of ``trainer.precision``, with the
same values and gradients (to bfloat16 rounding where the matmuls run in bfloat16).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from trainer.config import TrainerConfig
from trainer.inputs import frozen_prefix
from trainer.inputs.data import SplitTables
from trainer.model import unpadded
from trainer.model.precision import FLOAT32, Policy
from trainer.negatives import global_mining


class TrainingRows(tf.Module):
    """Device-resident training tables and the towers over them.

    Attributes:
        image_tower: the image tower.
        text_tower: the text tower.
        image_features: [N_i, D] float32 image features, one row per training image.
        text: the text tower's inputs, key -> [N_c, ...], one row per training caption.
        text_image_index: [N_c] int64 image row of each caption.
        text_prefix: the frozen bottom's cached states for ``text``, or None (whole tower).
        num_images: N_i.
        num_captions: N_c.

    """

    def __init__(self, image_tower: keras.Model, text_tower: keras.Model, split: SplitTables,
                 text_prefix: frozen_prefix.FrozenPrefix | unpadded.FlatPrefix | None = None):
        """Copies the split's tables to the device.

        Args:
            image_tower: image tower (variables built).
            text_tower: text tower (variables built).
            split: the training tables.
            text_prefix: ``FrozenPrefix`` (or its ``unpadded.FlatPrefix``) of ``split.text``
                for ``text_tower``; None runs the whole text tower at every call.

        """
        super().__init__(name="training_rows")
        self.image_tower, self.text_tower, self.text_prefix = image_tower, text_tower, text_prefix
        self.image_features = tf.constant(split.image_features)
        self.text = {key: tf.constant(value) for key, value in split.text.items()}
        self.text_image_index = tf.constant(split.text_image_index)
        self.num_images, self.num_captions = len(split.image_features), split.num_captions

    @classmethod
    def for_training(cls, config: TrainerConfig, image_tower: keras.Model,
                     text_tower: keras.Model, split: SplitTables,
                     policy: Policy = FLOAT32) -> TrainingRows:
        """The rows with the frozen-prefix cache wherever the config's text tower has one.

        The frozen bottom is computed, and steps embed the cached rows, without padding, with
        the matmuls in ``policy``'s precision (``trainer.model.precision.resolve``).
        """
        prefix = frozen_prefix.for_tower(config, text_tower, split.text, config.eval_batch_size,
                                         policy)
        flat = None if prefix is None else unpadded.FlatPrefix(prefix, policy)
        return cls(image_tower, text_tower, split, flat)

    def images(self, index: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Image rows ``index`` [B] -> [B, d] embeddings."""
        return self.image_tower(tf.gather(self.image_features, index), training=training)

    def captions(self, index: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Caption rows ``index`` [B] -> [B, d] embeddings."""
        if self.text_prefix is not None:
            return self.text_prefix.embed(index)
        inputs = {key: tf.gather(value, index) for key, value in self.text.items()}
        return self.text_tower(inputs, training=training)

    def image_keys(self, index: tf.Tensor) -> tf.Tensor:
        """The identity [B] int64 of image rows ``index`` across workers: the rows themselves.

        Every worker holds the whole split in the same row order, so a row names one image on
        all of them (``stream_input.BatchRows`` has per-batch rows and fingerprints instead).
        """
        return index

    def caption_keys(self, index: tf.Tensor) -> tf.Tensor:
        """The identity [B] int64 of caption rows ``index`` across workers: the rows themselves."""
        return index

    def image_modality(self) -> global_mining.Modality:
        """The images as global mining searches them (each image is its own id)."""
        return global_mining.Modality(self.image_tower, self.image_features, self.images,
                                      tf.range(self.num_images, dtype=tf.int64),
                                      self.num_images)

    def caption_modality(self) -> global_mining.Modality:
        """The captions as global mining searches them (id: the caption's image row)."""
        return global_mining.Modality(self.text_tower, self.text, self.captions,
                                      self.text_image_index, self.num_captions)
