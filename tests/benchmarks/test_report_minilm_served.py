"""The features-mode -> ``minilm`` projection mapping of benchmarks/report_minilm_served.py."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.report_minilm_served import copy_projection
from trainer import features
from trainer.model import minilm
from trainer.model.towers import FeatureTextTower
from trainer.tokens import wordpiece


def _feature_tower(d: int) -> FeatureTextTower:
    tower = FeatureTextTower(d)
    tower({features.CAPTION_FEATURES_XF: tf.zeros([1, minilm.SENTENCE_DIM])})
    return tower


@pytest.fixture(scope="module")
def minilm_tower():
    """One pretrained MiniLM tower (d = 4) for the module: loading the weights is the slow part."""
    return minilm.build_minilm_text_tower(d=4)


def test_minilm_tower_with_copied_projection_equals_linear_tower_on_encoder_output(minilm_tower):
    feature_tower = _feature_tower(4)
    projection = minilm_tower.get_layer("projection")
    projection.bias.assign(tf.ones([4]))  # must be reset: the linear tower has no bias
    copy_projection(feature_tower, minilm_tower)
    np.testing.assert_array_equal(projection.bias.numpy(), np.zeros(4, np.float32))
    np.testing.assert_array_equal(projection.kernel.numpy(), feature_tower.project.kernel.numpy())
    ids, mask = wordpiece.WordPieceEncoder(wordpiece.load_vocab(), 16)(
        tf.constant(["A dog runs on the beach .", "Two children play in the snow ."]))
    sentence = minilm_tower.encoder(ids, mask)
    expected = feature_tower({features.CAPTION_FEATURES_XF: sentence}).numpy()
    got = minilm_tower({wordpiece.WORDPIECE_IDS_XF: ids, wordpiece.WORDPIECE_MASK_XF: mask})
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), [1.0, 1.0], atol=1e-6)


def test_copy_projection_rejects_a_different_embedding_size(minilm_tower):
    with pytest.raises(ValueError, match=r"\(384, 3\) does not fit .* \(384, 4\)"):
        copy_projection(_feature_tower(3), minilm_tower)
