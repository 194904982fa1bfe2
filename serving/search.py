"""Brute-force top-k search over a gallery, in TensorFlow, chunk by chunk.

Scores are dot products of unit rows (cosine similarity). The gallery is scored ``chunk_size``
rows at a time and a running top-k is merged with each chunk's top-k, so memory stays
O(Q·chunk_size) instead of O(Q·N). Ties keep the lower gallery index first.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from serving.client import EmbeddingClient
from serving.gallery import GalleryIndex

DEFAULT_CHUNK_SIZE = 16384


def chunked_top_k(queries: tf.Tensor, gallery: tf.Tensor, k: int,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[tf.Tensor, tf.Tensor]:
    """The ``k`` best gallery rows for each query.

    Args:
        queries: float32 [Q, d].
        gallery: float32 [N, d] with a static N (N >= 1).
        k: results per query; clamped to N.
        chunk_size: gallery rows scored at once.

    Returns:
        ``(scores [Q, min(k, N)] float32, indices [Q, min(k, N)] int32)``, best first.

    Raises:
        ValueError: empty gallery, k < 1 or chunk_size < 1.

    """
    n = gallery.shape[0]
    if n is None or n < 1:
        raise ValueError(f"chunked_top_k needs a gallery with a static, positive size, got {n}")
    if k < 1 or chunk_size < 1:
        raise ValueError(f"k and chunk_size must be >= 1, got k={k}, chunk_size={chunk_size}")
    k = min(k, n)
    best_scores, best_indices = None, None
    for start in range(0, n, chunk_size):
        chunk = gallery[start:start + chunk_size]
        scores = tf.matmul(queries, chunk, transpose_b=True)  # [Q, chunk]
        top_scores, top_indices = tf.math.top_k(scores, k=min(k, chunk.shape[0]))
        top_indices += start
        if best_scores is None:
            best_scores, best_indices = top_scores, top_indices
            continue
        merged_scores = tf.concat([best_scores, top_scores], axis=1)
        merged_indices = tf.concat([best_indices, top_indices], axis=1)
        best_scores, position = tf.math.top_k(merged_scores, k=min(k, merged_scores.shape[1]))
        best_indices = tf.gather(merged_indices, position, batch_dims=1)
    return best_scores, best_indices


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result: gallery id, score and display text."""

    id: str
    score: float
    text: str


class GallerySearcher:
    """Text → images, image → images and text → captions over a ``GalleryIndex``.

    Args:
        index: the gallery (its model version should be the client's model's).
        client: embeds the queries with the same encoder.
        chunk_size: gallery rows scored at once.

    """

    def __init__(self, index: GalleryIndex, client: EmbeddingClient,
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        self.index, self.client, self.chunk_size = index, client, chunk_size
        self._images = tf.constant(index.image_embeddings)
        self._captions = (tf.constant(index.caption_embeddings)
                          if len(index.caption_ids) else None)

    def _search(self, queries: np.ndarray, gallery: tf.Tensor, ids: np.ndarray,
                texts: np.ndarray, k: int) -> list[list[Hit]]:
        scores, indices = chunked_top_k(tf.constant(queries), gallery, k, self.chunk_size)
        return [[Hit(str(ids[i]), float(s), str(texts[i])) for s, i in zip(row_s, row_i,
                                                                         strict=True)]
                for row_s, row_i in zip(scores.numpy(), indices.numpy(), strict=True)]

    @property
    def has_captions(self) -> bool:
        """Whether the index holds captions to search."""
        return self._captions is not None

    def images_near(self, embeddings: np.ndarray, k: int = 5) -> list[list[Hit]]:
        """Top-k gallery images per unit row [N, d] of either tower (already embedded)."""
        return self._search(embeddings, self._images, self.index.image_ids,
                            self.index.image_captions, k)

    def captions_near(self, embeddings: np.ndarray, k: int = 5) -> list[list[Hit]]:
        """Top-k gallery captions per unit row [N, d]; ``Hit.id`` is the caption id.

        Raises:
            ValueError: the index holds no captions.

        """
        if self._captions is None:
            raise ValueError("this gallery index has no captions to search")
        return self._search(embeddings, self._captions, self.index.caption_ids,
                            self.index.caption_texts, k)

    def text_to_images(self, captions: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """Top-k images per caption; ``Hit.text`` is the image's display caption."""
        return self.images_near(self.client.embed_text(captions), k)

    def image_to_images(self, image_features: np.ndarray, k: int = 5) -> list[list[Hit]]:
        """Top-k gallery images per query image [N, D] (intra-modal)."""
        return self.images_near(self.client.embed_image(image_features), k)

    def text_to_captions(self, captions: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """Top-k gallery captions per caption; ``Hit.id`` is the caption id.

        Raises:
            ValueError: the index holds no captions.

        """
        return self.captions_near(self.client.embed_text(captions), k)
