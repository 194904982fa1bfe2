"""The bank mode's on-device embeddings of the whole training set (``trainer.mining``)."""

from __future__ import annotations

import tensorflow as tf

from trainer.mining import DEFAULT_CHUNK_SIZE, hardest_negatives
from trainer.train import distribute


class EmbeddingBank(tf.Module):
    """On-device embeddings of the whole training set, for global hard-negative mining.

    Images are stored once per image (row = image index) and captions once per caption, with
    the integer image index of each caption; mined indices therefore index the training set's
    image and caption tables directly.

    Under a ``tf.distribute`` strategy every replica holds a bank of its own
    (``distribute.replica_variable``): replicas that write the same rows keep equal banks.
    """

    def __init__(self, text_image_index, num_images: int, dim: int,
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        """Creates an all-zero bank.

        Args:
            text_image_index: [N_c] int, the image index (0..num_images-1) of each caption.
            num_images: N_i, number of distinct training images.
            dim: embedding size d.
            chunk_size: bank rows scored per matmul when mining.

        """
        super().__init__(name="embedding_bank")
        self.chunk_size = chunk_size
        self.image_ids = tf.range(num_images, dtype=tf.int64)
        self.text_image_ids = tf.constant(text_image_index, tf.int64)
        num_captions = int(self.text_image_ids.shape[0])
        self.image = distribute.replica_variable(tf.zeros([num_images, dim]), "image")
        self.text = distribute.replica_variable(tf.zeros([num_captions, dim]), "text")

    def update(self, image_index, image_rows, text_index, text_rows) -> None:
        """Overwrites bank rows: ``image[image_index] = image_rows`` (shapes [B], [B, d]).

        Through the handles: a replica's own copies (which have no scatter methods).
        """
        for bank, index, rows in ((self.image, image_index, image_rows),
                                  (self.text, text_index, text_rows)):
            tf.raw_ops.ResourceScatterNdUpdate(ref=bank.handle,
                                               indices=tf.cast(index, tf.int64)[:, None],
                                               updates=tf.cast(rows, tf.float32))

    def mine(self, query_image, query_text, query_image_index) -> tuple[tf.Tensor, tf.Tensor]:
        """``hardest_negatives`` of a batch against the whole bank (``chunk_size`` rows a time).

        Args:
            query_image: [B, d] image embeddings.
            query_text: [B, d] caption embeddings.
            query_image_index: [B] int image index of each pair.

        Returns:
            ``(neg_image_index [B], neg_text_index [B])`` into the bank's image/caption rows.

        """
        return self._mine(query_image, query_text, query_image_index, self.chunk_size)

    @tf.function(reduce_retracing=True, autograph=False)
    def _mine(self, query_image, query_text, query_image_index, chunk_size: int):
        """``mine`` in a graph of this bank's own (a new ``chunk_size`` traces a new one)."""
        return hardest_negatives(query_image, query_text, query_image_index, self.image,
                                 self.image_ids, self.text, self.text_image_ids,
                                 chunk_size=chunk_size)
