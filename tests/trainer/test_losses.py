"""Each loss kind on a tiny batch whose value is computed by hand (see the comments)."""

import numpy as np
import pytest

from trainer import losses

# Row 0: i=(1,0), c=(.8,.6), c'=(.6,.8), i'=(0,1):
#   s(i,c)=.8, s(i,c')=.6, s(i',c)=.6, s(i',i)=0, s(c',c)=.96, s(i',c')=.8
# Row 1: i=(0,1), c=(0,1), c'=(1,0), i'=(1,0):
#   s(i,c)=1, s(i,c')=0, s(i',c)=0, s(i',i)=0, s(c',c)=0, s(i',c')=1
IMAGE = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
TEXT = np.array([[0.8, 0.6], [0.0, 1.0]], np.float32)
NEG_TEXT = np.array([[0.6, 0.8], [1.0, 0.0]], np.float32)
NEG_IMAGE = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
NEG_IS_PAIR = np.array([True, False])


def _loss(kind, **kwargs):
    return float(losses.triplet_loss(kind, IMAGE, TEXT, NEG_IMAGE, NEG_TEXT, NEG_IS_PAIR,
                                     **kwargs))


def test_hn_by_hand():
    # row 0: [.4-.8+.6]+ + [.4-.8+.6]+ = .4 ; row 1: [.4-1+0]+ + [.4-1+0]+ = 0 ; mean = .2
    assert _loss("hn", margin=0.4, intra_margin=0.4) == pytest.approx(0.2, abs=1e-6)


def test_fhn_by_hand():
    # hn = .2; intra image: [.4-.8+0]+ = 0, [.4-1+0]+ = 0
    # intra text: [.4-.8+.96]+ = .56, 0 -> mean .28
    # intra pair: 1*[.4-.8+.8]+ = .4, 0*[.4-1+1]+ = 0 -> mean .2 ; total .68
    assert _loss("fhn", margin=0.4, intra_margin=0.4) == pytest.approx(0.68, abs=1e-6)


def test_fhn_intra_margin_is_separate_from_margin():
    # hn (m=.4) = .2; m2=.2: intra text [.2-.8+.96]=.36 -> .18; pair [.2-.8+.8]=.2 -> .1
    assert _loss("fhn", margin=0.4, intra_margin=0.2) == pytest.approx(0.48, abs=1e-6)


def test_fhn_terms_are_reported_separately():
    loss = losses.TripletLoss("fhn", margin=0.4, intra_margin=0.4)
    terms = loss(losses.Triplets(IMAGE, TEXT, NEG_IMAGE, NEG_TEXT, NEG_IS_PAIR)).terms
    values = {name: float(value) for name, value in terms.items()}
    assert values == pytest.approx({losses.I2T: 0.1, losses.T2I: 0.1, losses.INTRA_IMAGE: 0.0,
                                    losses.INTRA_TEXT: 0.28, losses.INTRA_PAIR: 0.2}, abs=1e-6)


def test_mhn_by_hand():
    # row 0: [s(i',i) - .8 + .6]+ = [0-.8+.6]+ = 0 ; [s(c',c) - .8 + .6]+ = [.96-.8+.6] = .76
    # row 1: [0-1+0]+ = 0 ; [0-1+0]+ = 0 ; mean = .38
    assert _loss("mhn") == pytest.approx(0.38, abs=1e-6)


def test_sh_by_hand_masks_same_image_negatives():
    # ids a, a, b. S[b, j] = s(i_b, c_j):
    #   i0=(1,0):   .8   .6   0
    #   i1=(.6,.8): .96  1    .8
    #   i2=(0,1):   .6   .8   1
    # different-image pairs only: (0,2), (1,2), (2,0), (2,1)
    # i2t: [.4-.8+0]=0, [.4-1+.8]=.2, [.4-1+.6]=0, [.4-1+.8]=.2  -> sum .4
    # t2i: c0 vs i2 [.4-.8+.6]=.2, c1 vs i2 [.4-1+.8]=.2, c2 vs i0 0, c2 vs i1 [.4-1+.8]=.2
    # mean over B=3: (.4 + .6) / 3. (The same-image pair (i0, c1) would add .2 if not masked.)
    image = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)
    text = np.array([[0.8, 0.6], [0.6, 0.8], [0, 1]], np.float32)
    ids = np.array([b"a", b"a", b"b"])
    value = float(losses.triplet_loss("sh", image, text, None, None, None, 0.4, 0.4,
                                      image_ids=ids))
    assert value == pytest.approx(1.0 / 3.0, abs=1e-6)


def test_zero_loss_when_negatives_are_far():
    # s(i,c)=1, every negative similarity -1; the negative pair (-i, -i) is aligned
    # (s(i',c')=1), so only its term fires, and only when it is flagged as a positive pair:
    # [.4 - 1 + 1]+ = .4 on both rows.
    far = -IMAGE
    args = ("fhn", IMAGE, IMAGE, far, far)
    assert float(losses.triplet_loss(*args, np.zeros(2), 0.4, 0.4)) == 0.0
    assert float(losses.triplet_loss(*args, np.ones(2), 0.4, 0.4)) == pytest.approx(0.4)


def test_unknown_kind_and_missing_inputs_raise():
    with pytest.raises(ValueError, match="unknown triplet loss kind 'vse'"):
        losses.triplet_loss("vse", IMAGE, TEXT, NEG_IMAGE, NEG_TEXT, NEG_IS_PAIR, 0.4, 0.4)
    with pytest.raises(ValueError, match="image_ids"):
        losses.triplet_loss("sh", IMAGE, TEXT, None, None, None, 0.4, 0.4)
    with pytest.raises(ValueError, match="neg_is_pair"):
        losses.triplet_loss("fhn", IMAGE, TEXT, NEG_IMAGE, NEG_TEXT, None, 0.4, 0.4)
