"""Triplet losses of Mallea et al. (DS 2023): SH (VSE0), HN (VSE++), F-HN and M-HN.

All embeddings are L2-normalized rows and the similarity s(x, y) is their dot product. For a
batch of B positive pairs (i, c) with hard negatives (i', c') (see ``trainer.mining``):

- ``hn``:  [m - s(i,c) + s(i,c')]+ + [m - s(i,c) + s(i',c)]+
- ``fhn``: hn + [m2 - s(i,c) + s(i',i)]+ + [m2 - s(i,c) + s(c',c)]+
  + neg_is_pair * [m2 - s(i,c) + s(i',c')]+
- ``mhn``: [s(i',i) - s(i,c) + s(i,c')]+ + [s(c',c) - s(i,c) + s(i',c)]+
- ``sh``:  both hinges summed over every in-batch negative of a different image.

Each term is averaged over the batch; the loss is the sum of the terms. ``loss_terms`` returns
the terms separately (for per-term TensorBoard scalars), ``triplet_loss`` their sum.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from trainer.config import LOSS_KINDS

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


def _hn_terms(image, text, neg_image, neg_text, neg_is_pair, margin, intra_margin):
    pos = _rowdot(image, text)
    return {
        I2T: tf.nn.relu(margin - pos + _rowdot(image, neg_text)),
        T2I: tf.nn.relu(margin - pos + _rowdot(neg_image, text)),
    }


def _fhn_terms(image, text, neg_image, neg_text, neg_is_pair, margin, intra_margin):
    pos = _rowdot(image, text)
    terms = _hn_terms(image, text, neg_image, neg_text, neg_is_pair, margin, intra_margin)
    terms[INTRA_IMAGE] = tf.nn.relu(intra_margin - pos + _rowdot(neg_image, image))
    terms[INTRA_TEXT] = tf.nn.relu(intra_margin - pos + _rowdot(neg_text, text))
    pair_hinge = tf.nn.relu(intra_margin - pos + _rowdot(neg_image, neg_text))
    terms[INTRA_PAIR] = _float(neg_is_pair) * pair_hinge
    return terms


def _mhn_terms(image, text, neg_image, neg_text, neg_is_pair, margin, intra_margin):
    pos = _rowdot(image, text)
    return {
        I2T: tf.nn.relu(_rowdot(neg_image, image) - pos + _rowdot(image, neg_text)),
        T2I: tf.nn.relu(_rowdot(neg_text, text) - pos + _rowdot(neg_image, text)),
    }


_HARD_NEGATIVE_TERMS: dict[str, Callable[..., dict[str, tf.Tensor]]] = {
    "hn": _hn_terms,
    "fhn": _fhn_terms,
    "mhn": _mhn_terms,
}


def _sh_terms(image: tf.Tensor, text: tf.Tensor, image_ids, margin: float) -> dict:
    """VSE0 sum-of-hinges over every in-batch negative of a different image.

    Args:
        image: [B, d] image embeddings.
        text: [B, d] caption embeddings; row b is the positive of image row b.
        image_ids: [B] image ids (any dtype) of the pairs.
        margin: the margin m.

    Returns:
        {I2T: [B], T2I: [B]} per-anchor sums of hinges.

    """
    if image_ids is None:
        raise ValueError("triplet_loss kind 'sh' needs the keyword argument image_ids [B]")
    ids = tf.convert_to_tensor(image_ids)
    scores = tf.matmul(image, text, transpose_b=True)  # [B, B]: s(i_b, c_j)
    pos = tf.linalg.diag_part(scores)
    negative = tf.cast(tf.not_equal(ids[:, None], ids[None, :]), tf.float32)
    i2t = tf.nn.relu(margin - pos[:, None] + scores) * negative
    t2i = tf.nn.relu(margin - pos[None, :] + scores) * negative
    return {I2T: tf.reduce_sum(i2t, axis=1), T2I: tf.reduce_sum(t2i, axis=0)}


def loss_terms(
    kind: str,
    *,
    image,
    text,
    neg_image=None,
    neg_text=None,
    neg_is_pair=None,
    margin: float = 0.4,
    intra_margin: float = 0.4,
    image_ids=None,
) -> dict[str, tf.Tensor]:
    """The loss terms of ``kind``, each averaged over the batch.

    Everything after ``kind`` is a keyword: eight similar tensors and margins are easy to pass
    in the wrong order.

    Args:
        kind: one of ``LOSS_KINDS``.
        image: [B, d] L2-normalized image embeddings (row b pairs with text row b).
        text: [B, d] L2-normalized caption embeddings.
        neg_image: [B, d] hard-negative image i' of each caption (unused by ``sh``).
        neg_text: [B, d] hard-negative caption c' of each image (unused by ``sh``).
        neg_is_pair: [B] bool/float, whether (i', c') is a positive pair (used by ``fhn``).
        margin: the cross-modal margin m.
        intra_margin: the intra-modal margin m2 (used by ``fhn``).
        image_ids: [B] image ids, required by ``sh``.

    Returns:
        Ordered dict term name -> scalar float32 tensor (``I2T``, ``T2I`` and, for ``fhn``,
        ``INTRA_IMAGE``, ``INTRA_TEXT``, ``INTRA_PAIR``).

    Raises:
        ValueError: for an unknown kind or missing inputs.

    """
    image, text = _float(image), _float(text)
    if kind == "sh":
        per_anchor = _sh_terms(image, text, image_ids, margin)
    elif kind in _HARD_NEGATIVE_TERMS:
        if neg_image is None or neg_text is None or (kind == "fhn" and neg_is_pair is None):
            raise ValueError(f"triplet_loss kind {kind!r} needs neg_image, neg_text"
                             + (" and neg_is_pair" if kind == "fhn" else ""))
        per_anchor = _HARD_NEGATIVE_TERMS[kind](
            image, text, _float(neg_image), _float(neg_text), neg_is_pair, margin, intra_margin
        )
    else:
        raise ValueError(f"unknown triplet loss kind {kind!r}; expected one of {LOSS_KINDS}")
    return {name: tf.reduce_mean(value) for name, value in per_anchor.items()}


def triplet_loss(
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
    """The triplet loss of ``kind`` (docs/architecture.md contract): the sum of ``loss_terms``.

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
    terms = loss_terms(kind, image=image, text=text, neg_image=neg_image, neg_text=neg_text,
                       neg_is_pair=neg_is_pair, margin=margin, intra_margin=intra_margin,
                       image_ids=image_ids)
    return tf.add_n(list(terms.values()))
