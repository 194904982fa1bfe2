"""Triplet losses of Mallea et al. (DS 2023): SH (VSE0), HN (VSE++), F-HN and M-HN.

All embeddings are L2-normalized rows and the similarity s(x, y) is their dot product. For a
batch of B positive pairs (i, c) with hard negatives (i', c') (see ``trainer.mining``):

- ``hn``:  [m - s(i,c) + s(i,c')]+ + [m - s(i,c) + s(i',c)]+
- ``fhn``: hn + [m2 - s(i,c) + s(i',i)]+ + [m2 - s(i,c) + s(c',c)]+
  + neg_is_pair * [m2 - s(i,c) + s(i',c')]+
- ``mhn``: [s(i',i) - s(i,c) + s(i,c')]+ + [s(c',c) - s(i,c) + s(i',c)]+
- ``sh``:  both hinges summed over every in-batch negative of a different image.

Each term is averaged over the batch; the loss is the sum of the terms. ``TripletLoss``, built
once from the configuration, returns both (the terms feed per-term TensorBoard scalars);
``triplet_loss`` is the sum, for one call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf

from trainer.config import LOSS_KINDS, TrainerConfig

# Names of the loss terms (TensorBoard scalars use them).
I2T = "i2t_hinge"  # image anchor, negative caption c'
T2I = "t2i_hinge"  # caption anchor, negative image i'
INTRA_IMAGE = "intra_image"  # s(i', i)
INTRA_TEXT = "intra_text"  # s(c', c)
INTRA_PAIR = "intra_pair"  # s(i', c') when (i', c') is a positive pair


def _rowdot(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Row-wise dot products of [B, d] and [B, d] -> [B]."""
    return tf.reduce_sum(x * y, axis=-1)


def _float(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


class Triplets(NamedTuple):
    """A batch of positive pairs with their hard negatives (row b of each belongs together).

    Attributes:
        image: [B, d] L2-normalized image embeddings (row b pairs with text row b).
        text: [B, d] L2-normalized caption embeddings.
        neg_image: [B, d] hard-negative image i' of each caption (unused by ``sh``).
        neg_text: [B, d] hard-negative caption c' of each image (unused by ``sh``).
        neg_is_pair: [B] bool/float, whether (i', c') is a positive pair (used by ``fhn``).
        image_ids: [B] image ids of the pairs, required by ``sh``.

    """

    image: Any
    text: Any
    neg_image: Any = None
    neg_text: Any = None
    neg_is_pair: Any = None
    image_ids: Any = None


def _hn_terms(t: Triplets, margin: float, intra_margin: float) -> dict[str, tf.Tensor]:
    del intra_margin  # hn has no intra-modal terms
    pos = _rowdot(t.image, t.text)
    return {
        I2T: tf.nn.relu(margin - pos + _rowdot(t.image, t.neg_text)),
        T2I: tf.nn.relu(margin - pos + _rowdot(t.neg_image, t.text)),
    }


def _fhn_terms(t: Triplets, margin: float, intra_margin: float) -> dict[str, tf.Tensor]:
    pos = _rowdot(t.image, t.text)
    terms = _hn_terms(t, margin, intra_margin)
    terms[INTRA_IMAGE] = tf.nn.relu(intra_margin - pos + _rowdot(t.neg_image, t.image))
    terms[INTRA_TEXT] = tf.nn.relu(intra_margin - pos + _rowdot(t.neg_text, t.text))
    pair_hinge = tf.nn.relu(intra_margin - pos + _rowdot(t.neg_image, t.neg_text))
    terms[INTRA_PAIR] = _float(t.neg_is_pair) * pair_hinge
    return terms


def _mhn_terms(t: Triplets, margin: float, intra_margin: float) -> dict[str, tf.Tensor]:
    del margin, intra_margin  # mhn's margins are the intra-modal similarities
    pos = _rowdot(t.image, t.text)
    return {
        I2T: tf.nn.relu(_rowdot(t.neg_image, t.image) - pos + _rowdot(t.image, t.neg_text)),
        T2I: tf.nn.relu(_rowdot(t.neg_text, t.text) - pos + _rowdot(t.neg_image, t.text)),
    }


def _sh_terms(t: Triplets, margin: float, intra_margin: float) -> dict[str, tf.Tensor]:
    """VSE0 sum-of-hinges over every in-batch negative of a different image.

    Returns:
        {I2T: [B], T2I: [B]} per-anchor sums of hinges.

    """
    del intra_margin  # sh has no intra-modal terms
    ids = tf.convert_to_tensor(t.image_ids)
    scores = tf.matmul(t.image, t.text, transpose_b=True)  # [B, B]: s(i_b, c_j)
    pos = tf.linalg.diag_part(scores)
    negative = tf.cast(tf.not_equal(ids[:, None], ids[None, :]), tf.float32)
    i2t = tf.nn.relu(margin - pos[:, None] + scores) * negative
    t2i = tf.nn.relu(margin - pos[None, :] + scores) * negative
    return {I2T: tf.reduce_sum(i2t, axis=1), T2I: tf.reduce_sum(t2i, axis=0)}


_TERMS: dict[str, Callable[[Triplets, float, float], dict[str, tf.Tensor]]] = {
    "sh": _sh_terms,
    "hn": _hn_terms,
    "fhn": _fhn_terms,
    "mhn": _mhn_terms,
}


def _checked(kind: str, t: Triplets) -> Triplets:
    """``t`` with float32 embeddings; ValueError names the inputs ``kind`` lacks."""
    if kind == "sh":
        if t.image_ids is None:
            raise ValueError("triplet_loss kind 'sh' needs the keyword argument image_ids [B]")
        return t._replace(image=_float(t.image), text=_float(t.text))
    if t.neg_image is None or t.neg_text is None or (kind == "fhn" and t.neg_is_pair is None):
        raise ValueError(f"triplet_loss kind {kind!r} needs neg_image, neg_text"
                         + (" and neg_is_pair" if kind == "fhn" else ""))
    return t._replace(image=_float(t.image), text=_float(t.text),
                      neg_image=_float(t.neg_image), neg_text=_float(t.neg_text))


class LossValue(NamedTuple):
    """What ``TripletLoss`` returns.

    Attributes:
        total: scalar float32, the sum of the terms (the loss).
        terms: ordered dict term name -> scalar float32, each averaged over the batch
            (``I2T``, ``T2I`` and, for ``fhn``, ``INTRA_IMAGE``, ``INTRA_TEXT``,
            ``INTRA_PAIR``).

    """

    total: tf.Tensor
    terms: dict[str, tf.Tensor]


@dataclasses.dataclass(frozen=True)
class TripletLoss:
    """The triplet loss of one kind and its margins, built once from the configuration.

    Attributes:
        kind: one of ``LOSS_KINDS``.
        margin: the cross-modal margin m (paper default 0.4).
        intra_margin: the intra-modal margin m2 (used by ``fhn``; paper default 0.4).

    """

    kind: str
    margin: float = 0.4
    intra_margin: float = 0.4

    def __post_init__(self):
        """Raises ValueError: an unknown kind."""
        if self.kind not in _TERMS:
            raise ValueError(f"unknown triplet loss kind {self.kind!r}; expected one of "
                             f"{LOSS_KINDS}")

    @classmethod
    def from_config(cls, config: TrainerConfig) -> TripletLoss:
        """The loss of ``config.loss`` with the configured margins."""
        return cls(config.loss, config.margin, config.intra_margin)

    def __call__(self, triplets: Triplets) -> LossValue:
        """The loss of a batch and its terms.

        Raises:
            ValueError: ``triplets`` lacks an input this kind needs.

        """
        per_anchor = _TERMS[self.kind](_checked(self.kind, triplets), self.margin,
                                       self.intra_margin)
        terms = {name: tf.reduce_mean(value) for name, value in per_anchor.items()}
        return LossValue(tf.add_n(list(terms.values())), terms)


def triplet_loss(  # noqa: PLR0913 - external contract (docs/architecture.md), kept as is
    kind: str,
    image,
    text,
    neg_image=None,
    neg_text=None,
    neg_is_pair=None,
    margin: float = 0.4,
    intra_margin: float = 0.4,
    *,
    image_ids=None,
) -> tf.Tensor:
    """The triplet loss of ``kind`` (docs/architecture.md contract): ``TripletLoss``'s total.

    Args:
        kind: ``"sh"``, ``"hn"``, ``"fhn"`` or ``"mhn"``.
        image: [B, d] L2-normalized image embeddings.
        text: [B, d] L2-normalized caption embeddings; row b is the positive of image row b.
        neg_image: [B, d] hard-negative image for caption b.
        neg_text: [B, d] hard-negative caption for image b.
        neg_is_pair: [B] whether (neg_image[b], neg_text[b]) is a positive pair.
        margin: m (paper default 0.4).
        intra_margin: m2 (paper default 0.4).
        image_ids: [B] image ids; required for ``"sh"`` only.

    Returns:
        Scalar float32 tensor.

    """
    triplets = Triplets(image, text, neg_image, neg_text, neg_is_pair, image_ids)
    return TripletLoss(kind, margin, intra_margin)(triplets).total
