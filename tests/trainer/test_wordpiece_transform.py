"""WordPiece inside a real tf.Transform graph: analyze + transform with Beam, then the saved
transform graph (as the Trainer and the served model load it) gives the same ids."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import features, wordpiece

CAPTIONS = [b"A dog runs .", b"Two men, smiling!", b""]


def _preprocessing_fn(inputs):
    return wordpiece.wordpiece_features(inputs[features.CAPTION_KEY], max_tokens=8)


@pytest.mark.slow
@pytest.mark.e2e
def test_transform_graph_round_trip(tmp_path):
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    schema = schema_utils.schema_from_feature_spec(
        {features.CAPTION_KEY: tf.io.FixedLenFeature([], tf.string)}
    )
    raw = [{features.CAPTION_KEY: c} for c in CAPTIONS]
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        (transformed, _), transform_fn = (
            raw,
            dataset_metadata.DatasetMetadata(schema),
        ) | tft_beam.AnalyzeAndTransformDataset(_preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "tft"))
    ids = np.stack([row[wordpiece.WORDPIECE_IDS_XF] for row in transformed])
    assert ids.tolist() == [
        [101, 1037, 3899, 3216, 1012, 102, 0, 0],  # a dog runs .
        [101, 2048, 2273, 1010, 5629, 999, 102, 0],  # two men , smiling !
        [101, 102, 0, 0, 0, 0, 0, 0],
    ]
    layer = tft.TFTransformOutput(str(tmp_path / "tft")).transform_features_layer()
    served = layer({features.CAPTION_KEY: tf.constant(CAPTIONS)})
    np.testing.assert_array_equal(served[wordpiece.WORDPIECE_IDS_XF].numpy(), ids)
    np.testing.assert_array_equal(served[wordpiece.WORDPIECE_MASK_XF].numpy(), ids != 0)
