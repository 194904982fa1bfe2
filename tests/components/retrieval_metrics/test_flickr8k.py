"""Blessing on real Flickr8k: a good model is blessed and pushed, a broken one is neither.

Stand-in towers keep it fast: the text tower is the MiniLM caption features, the image tower a
ridge map from MobileNetV2 features into that space, fit on 1,000 train images. The broken
candidate is the same recipe fit on shuffled image/caption pairs. The eval split is 100 dev
images × 5 captions; the stock Evaluator runs our TFMA metrics and the stock Pusher follows.
"""

import numpy as np
import pytest
import tensorflow as tf

from components.retrieval_metrics import MetricSettings, build_eval_config
from tests.components import tiny_retrieval_model as tiny
from trainer import features

N_TRAIN, N_EVAL = 1000, 100


class RidgeModel(tf.Module):
    """serving_default: z-scored image features @ W, and the caption features, L2-normalized."""

    def __init__(self, weights, mean, std):
        self.weights = tf.Variable(weights.astype(np.float32))
        self.mean = tf.constant(mean.astype(np.float32))
        self.std = tf.constant(std.astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, examples):
        parsed = tf.io.parse_example(examples, {
            features.IMAGE_FEATURES_KEY: tf.io.FixedLenFeature([self.mean.shape[0]], tf.float32),
            features.CAPTION_FEATURES_KEY: tf.io.FixedLenFeature([self.weights.shape[1]],
                                                                 tf.float32)})
        image = (parsed[features.IMAGE_FEATURES_KEY] - self.mean) / self.std @ self.weights
        return {features.IMAGE_EMBEDDING_OUTPUT: tf.math.l2_normalize(image, axis=1),
                features.TEXT_EMBEDDING_OUTPUT: tf.math.l2_normalize(
                    parsed[features.CAPTION_FEATURES_KEY], axis=1)}


def _load(folder):
    names = (folder / "features" / "mobilenet_v2.names.txt").read_text().split()
    images = dict(zip(names, np.load(folder / "features" / "mobilenet_v2.npy"), strict=True))
    ids = (folder / "features" / "minilm_l6_v2.ids.txt").read_text().split()
    text = dict(zip(ids, np.load(folder / "features" / "minilm_l6_v2.npy"), strict=True))
    captions = dict(line.split("\t", 1) for line in
                    (folder / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines())
    split = {name: (folder / f"Flickr_8k.{name}Images.txt").read_text().split()
             for name in ("train", "dev")}
    return images, text, captions, split


def _ridge(images, text, train_ids, shuffle):
    x = np.stack([images[i] for i in train_ids]).astype(np.float64)
    y = np.stack([np.mean([text[f"{i}#{k}"] for k in range(5)], axis=0) for i in train_ids])
    if shuffle:
        y = y[np.random.default_rng(0).permutation(len(y))]
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-3
    z = (x - mean) / std
    weights = np.linalg.solve(z.T @ z + 100.0 * np.eye(z.shape[1]), z.T @ y)
    return RidgeModel(weights, mean, std)


def _write_eval(root, images, text, captions, eval_ids):
    split_dir = root / "examples" / "Split-eval"
    split_dir.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split_dir / "data.gz"), options="GZIP") as writer:
        for image_id in eval_ids:
            for k in range(5):
                caption_id = f"{image_id}#{k}"
                example = tf.train.Example()
                feats = example.features.feature
                for key, value in ((features.IMAGE_ID_KEY, image_id),
                                   (features.CAPTION_ID_KEY, caption_id),
                                   (features.CAPTION_KEY, captions[caption_id])):
                    feats[key].bytes_list.value.append(value.encode("utf-8"))
                feats[features.IMAGE_FEATURES_KEY].float_list.value.extend(images[image_id])
                feats[features.CAPTION_FEATURES_KEY].float_list.value.extend(text[caption_id])
                writer.write(example.SerializeToString())


def _push(root, name, model, blessing):
    from tfx.components.pusher import executor
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(root / name / "pushed")
    serving_dir = root / name / "serving"
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(serving_dir)))
    executor.Executor().Do({"model": [model], "model_blessing": [blessing]},
                           {"pushed_model": [pushed]},
                           {"push_destination": proto_utils.proto_to_json(destination)})
    return serving_dir.exists() and any(serving_dir.iterdir())


@pytest.mark.slow(minutes=3)
@pytest.mark.e2e
def test_good_model_blessed_and_pushed_broken_model_not(flickr8k_dir, tmp_path):
    from tfx.utils import path_utils

    images, text, captions, split = _load(flickr8k_dir)
    _write_eval(tmp_path, images, text, captions, split["dev"][:N_EVAL])
    for name, shuffle in (("good", False), ("broken", True)):
        module = _ridge(images, text, split["train"][:N_TRAIN], shuffle)
        tf.saved_model.save(module, path_utils.serving_model_dir(str(tmp_path / name)),
                            signatures={features.SERVING_DEFAULT_SIGNATURE: module.serve})
    config = build_eval_config(rsum_lower_bound=150.0, rsum_change=0.0, settings=MetricSettings(
        relevance_dir=str(tmp_path / "relevance")))
    found = tiny.artifacts(tmp_path)
    uri, blessed, blessing = tiny.run_evaluator(tmp_path, "first", config, model="good")
    assert blessed
    assert _push(tmp_path, "first", found["good"], blessing)

    uri, blessed, blessing = tiny.run_evaluator(tmp_path, "second", config, baseline="good",
                                                model="broken")
    assert not blessed
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(uri)
    failed = {(f.metric_key.name, f.metric_key.is_diff)
              for s in result.metric_validations_per_slice for f in s.failures}
    assert failed == {("rsum", False), ("rsum", True)}
    assert not _push(tmp_path, "second", found["broken"], blessing)
    [metrics_for_slice] = list(tfma.load_metrics(uri))
    values = {(kv.key.name, kv.key.model_name, kv.key.is_diff): kv.value.double_value.value
              for kv in metrics_for_slice.metric_keys_and_values}
    assert values[("rsum", "candidate", False)] < 150.0 < values[("rsum", "baseline", False)]
