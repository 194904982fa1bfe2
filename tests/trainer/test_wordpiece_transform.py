"""WordPiece inside the real Transform graph: ``preprocessing_fn`` with ``wordpiece_max_tokens``
analyzed and applied with Beam, then the saved transform graph (as the Trainer and the served
model load it) gives the same ids from captions alone; and the config field is validated."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import features, preprocessing
from trainer.tokens import wordpiece

CAPTIONS = [b"A dog runs .", b"Two men, smiling!", b"A dog ."]
EXPECTED_IDS = [
    [101, 1037, 3899, 3216, 1012, 102, 0, 0],  # a dog runs .
    [101, 2048, 2273, 1010, 5629, 999, 102, 0],  # two men , smiling !
    [101, 1037, 3899, 1012, 102, 0, 0, 0],  # a dog .
]


@pytest.mark.parametrize("value", [2, 3.0, True])
def test_wordpiece_max_tokens_is_validated(value):
    with pytest.raises(ValueError, match="TransformConfig.wordpiece_max_tokens must be"):
        preprocessing.TransformConfig.from_dict({"wordpiece_max_tokens": value})


def _raw_examples():
    return [
        {
            features.IMAGE_ID_KEY: f"img{i}.jpg".encode(),
            features.CAPTION_ID_KEY: f"img{i}.jpg#0".encode(),
            features.CAPTION_KEY: caption,
            features.IMAGE_FEATURES_KEY: np.array([i, 1.0], np.float32),
        }
        for i, caption in enumerate(CAPTIONS)
    ]


@pytest.mark.slow(minutes=2)
@pytest.mark.e2e
def test_preprocessing_fn_emits_wordpiece_and_serves_it_from_captions_alone(tmp_path):
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    spec = {key: tf.io.FixedLenFeature([], tf.string) for key in features.ID_KEYS}
    spec[features.CAPTION_KEY] = tf.io.FixedLenFeature([], tf.string)
    spec[features.IMAGE_FEATURES_KEY] = tf.io.FixedLenFeature([2], tf.float32)
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    config = {"wordpiece_max_tokens": 8, "vocab_frequency_threshold": 1}

    def preprocessing_fn(inputs):
        return preprocessing.preprocessing_fn(inputs, config)

    with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        (transformed, _), transform_fn = (
            _raw_examples(),
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "tft"))
    ids = np.stack([row[wordpiece.WORDPIECE_IDS_XF] for row in transformed])
    mask = np.stack([row[wordpiece.WORDPIECE_MASK_XF] for row in transformed])
    assert ids.tolist() == EXPECTED_IDS
    np.testing.assert_array_equal(mask, ids != 0)
    layer = tft.TFTransformOutput(str(tmp_path / "tft")).transform_features_layer()
    served = layer({features.CAPTION_KEY: tf.constant(CAPTIONS)})
    np.testing.assert_array_equal(served[wordpiece.WORDPIECE_IDS_XF].numpy(), ids)
    np.testing.assert_array_equal(served[wordpiece.WORDPIECE_MASK_XF].numpy(), mask)
