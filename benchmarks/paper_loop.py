"""A faithful re-implementation of how the paper's reference code trains (the speed baseline).

Per batch of B (caption, image) pairs:

1. encode all training images with the image tower and score the B batch captions against them
   ([B, N_images]); encode all training captions with the text tower and score the B batch
   images against them ([B, N_captions]);
2. in a Python loop over the B queries, set the positive image's score to -inf (its position
   found with ``list.index`` on the list of training image ids) and the scores of the anchor
   image's captions to -inf (each found with ``list.index`` on the list of training caption
   ids), take the argmax of each row as the hardest negative image and caption, and note
   whether the two negatives are a pair;
3. one gradient step on the triplet loss, the negatives re-encoded through the towers.

The algorithm is reproduced, not the accidents of the original implementation (no
``gc.collect()`` calls, no redundant NumPy conversions): TensorFlow compute runs in
``tf.function`` graphs, and only what the algorithm does in Python is done in Python.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import dataclasses  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from trainer import losses
from trainer.inputs.data import SplitTables  # noqa: E402
from trainer.negatives import primitive_matmul


@dataclasses.dataclass(frozen=True)
class Negatives:
    """Hardest negatives of one batch, as the paper's loop picks them.

    Attributes:
        image_index: [B] int64 row of the hardest negative image of caption b.
        text_index: [B] int64 row of the hardest negative caption of image b.
        is_pair: [B] bool, whether those two negatives are themselves a positive pair.

    """

    image_index: np.ndarray
    text_index: np.ndarray
    is_pair: np.ndarray


@dataclasses.dataclass(frozen=True)
class IdLists:
    """The training set's ids as Python lists, the way the reference code looks them up.

    Attributes:
        image_ids: training image ids, row order of the image table.
        caption_ids: training caption ids, row order of the caption table.
        caption_image_ids: image id of each caption.
        captions_of: image id -> ids of its captions.

    """

    image_ids: list[str]
    caption_ids: list[str]
    caption_image_ids: list[str]
    captions_of: dict[str, list[str]]

    @classmethod
    def from_split(cls, split: SplitTables) -> IdLists:
        """Builds the lists from a split's tables."""
        image_ids = [_text(name) for name in split.image_ids]
        caption_image_ids = [image_ids[row] for row in split.text_image_index]
        captions_of: dict[str, list[str]] = {}
        caption_ids = [_text(name) for name in split.caption_ids]
        for caption_id, image_id in zip(caption_ids, caption_image_ids, strict=True):
            captions_of.setdefault(image_id, []).append(caption_id)
        return cls(image_ids, caption_ids, caption_image_ids, captions_of)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def pick_negatives(caption_to_images: np.ndarray, image_to_captions: np.ndarray,
                   batch_image_ids: list[str], ids: IdLists) -> Negatives:
    """The paper's per-query Python loop: ``list.index`` exclusions, then row argmax.

    Args:
        caption_to_images: [B, N_images] float scores s(c_b, image); modified in place.
        image_to_captions: [B, N_captions] float scores s(i_b, caption); modified in place.
        batch_image_ids: the B anchor image ids (pair b is (image b, caption b)).
        ids: the training set's id lists.

    Returns:
        The batch's ``Negatives`` (ties go to the lowest row, as ``np.argmax``).

    """
    size = len(batch_image_ids)
    neg_image = np.empty(size, np.int64)
    neg_text = np.empty(size, np.int64)
    is_pair = np.empty(size, bool)
    for b, image_id in enumerate(batch_image_ids):
        caption_to_images[b, ids.image_ids.index(image_id)] = -np.inf
        for caption_id in ids.captions_of[image_id]:
            image_to_captions[b, ids.caption_ids.index(caption_id)] = -np.inf
        neg_image[b] = np.argmax(caption_to_images[b])
        neg_text[b] = np.argmax(image_to_captions[b])
        is_pair[b] = ids.caption_image_ids[neg_text[b]] == ids.image_ids[neg_image[b]]
    return Negatives(neg_image, neg_text, is_pair)


@dataclasses.dataclass
class PhaseSeconds:
    """Wall time spent in each phase of the loop, summed over ``steps`` steps.

    ``encode_and_score`` ends when the scores are NumPy arrays (the TensorFlow work runs
    asynchronously until then); ``python_loop`` is ``pick_negatives``.
    """

    encode_and_score: float = 0.0
    python_loop: float = 0.0
    gradient_step: float = 0.0
    steps: int = 0

    def per_step(self) -> dict[str, float]:
        """Mean seconds per step of each phase."""
        phases = ("encode_and_score", "python_loop", "gradient_step")
        return {name: getattr(self, name) / max(self.steps, 1) for name in phases}


class PaperLoop(tf.Module):
    """The paper's training loop over in-memory training tables (see the module docstring)."""

    def __init__(self, image_tower: keras.Model, text_tower: keras.Model, train: SplitTables,
                 loss: str = "fhn", margin: float = 0.4, intra_margin: float = 0.4,
                 learning_rate: float = 2e-4, clip_norm: float | None = 2.0):
        """Keeps the towers and the training tables; creates an Adam optimizer.

        Args:
            image_tower: image features [B, D] -> [B, d] (L2-normalized).
            text_tower: dict of text inputs [B, ...] -> [B, d] (L2-normalized).
            train: the training split's tables.
            loss: triplet loss kind with hard negatives (``hn``, ``fhn``, ``mhn``).
            margin: cross-modal margin.
            intra_margin: intra-modal margin (``fhn``).
            learning_rate: Adam learning rate.
            clip_norm: global gradient-norm clipping, or None.

        """
        super().__init__(name="paper_loop")
        self.image_tower, self.text_tower = image_tower, text_tower
        self.loss, self.margin, self.intra_margin = loss, margin, intra_margin
        self.optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=clip_norm)
        self.images = tf.constant(train.image_features)
        self.text = {key: tf.constant(value) for key, value in train.text.items()}
        self.text_image_index = tf.constant(train.text_image_index)
        self.ids = IdLists.from_split(train)
        self.seconds = PhaseSeconds()

    @tf.function
    def scores(self, caption_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Encodes the whole training set and scores the batch against it.

        Args:
            caption_index: [B] caption rows of the batch.

        Returns:
            ``(caption_to_images [B, N_images], image_to_captions [B, N_captions])``.

        """
        all_images = self.image_tower(self.images, training=False)
        all_text = self.text_tower(self.text, training=False)
        image_index = tf.gather(self.text_image_index, caption_index)
        # The same matmul kernel as our mining scores (``trainer.negatives.primitive_matmul``,
        # faster
        # than tf.matmul for these [B, N] shapes): the speed-up credits no kernel choice.
        caption_to_images = primitive_matmul.matmul(tf.gather(all_text, caption_index),
                                                    all_images, transpose_b=True)
        image_to_captions = primitive_matmul.matmul(tf.gather(all_images, image_index), all_text,
                                                    transpose_b=True)
        return caption_to_images, image_to_captions

    def negatives(self, caption_index: np.ndarray) -> Negatives:
        """Steps 1-2: scores against the re-encoded training set, then the Python loop."""
        start = time.perf_counter()
        caption_to_images, image_to_captions = self.scores(tf.constant(caption_index))
        arrays = caption_to_images.numpy(), image_to_captions.numpy()
        self.seconds.encode_and_score += time.perf_counter() - start
        batch_image_ids = [self.ids.caption_image_ids[row] for row in caption_index]
        picked = time.perf_counter()
        negatives = pick_negatives(*arrays, batch_image_ids, self.ids)
        self.seconds.python_loop += time.perf_counter() - picked
        return negatives

    @tf.function
    def gradient_step(self, caption_index: tf.Tensor, neg_image: tf.Tensor, neg_text: tf.Tensor,
                      is_pair: tf.Tensor) -> tf.Tensor:
        """Step 3: one optimizer step on the triplet loss; returns the loss (scalar)."""
        image_index = tf.gather(self.text_image_index, caption_index)
        encode_text = lambda rows: self.text_tower(  # noqa: E731
            {key: tf.gather(value, rows) for key, value in self.text.items()}, training=True)
        with tf.GradientTape() as tape:
            image = self.image_tower(tf.gather(self.images, image_index), training=True)
            text = encode_text(caption_index)
            negative_image = self.image_tower(tf.gather(self.images, neg_image), training=True)
            loss = losses.triplet_loss(self.loss, image=image, text=text,
                                       neg_image=negative_image, neg_text=encode_text(neg_text),
                                       neg_is_pair=is_pair, margin=self.margin,
                                       intra_margin=self.intra_margin)
        variables = self.image_tower.trainable_variables + self.text_tower.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    def train_step(self, caption_index: np.ndarray) -> tuple[Negatives, float]:
        """One step of the paper's loop on the batch ``caption_index`` [B].

        Returns:
            The batch's negatives (picked before the update) and the loss.

        """
        negatives = self.negatives(caption_index)
        start = time.perf_counter()
        loss = float(self.gradient_step(tf.constant(caption_index),
                                        tf.constant(negatives.image_index),
                                        tf.constant(negatives.text_index),
                                        tf.constant(negatives.is_pair)))
        self.seconds.gradient_step += time.perf_counter() - start
        self.seconds.steps += 1
        return negatives, loss
