"""Writes small GZIP TFRecords of raw caption examples (the ExampleGen's format) for tests."""

import tensorflow as tf

from trainer import features


def write_examples(path, rows):
    """Writes ``rows`` of (image_id, caption_id, caption, image feature values) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for image_id, caption_id, caption, values in rows:
            example = tf.train.Example()
            feats = example.features.feature
            feats[features.IMAGE_ID_KEY].bytes_list.value.append(image_id.encode())
            feats[features.CAPTION_ID_KEY].bytes_list.value.append(caption_id.encode())
            feats[features.CAPTION_KEY].bytes_list.value.append(caption.encode())
            feats[features.IMAGE_FEATURES_KEY].float_list.value.extend(values)
            writer.write(example.SerializeToString())
