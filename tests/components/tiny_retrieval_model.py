"""A tiny exported retrieval model, eval examples and a stock-Evaluator run, for tests."""

import json
import os

import numpy as np
import tensorflow as tf

from trainer import features

D_IN, D_OUT, BUCKETS = 4, 3, 11
WORDS = ["dog", "cat", "runs", "red", "ball", "grass", "a", "the", "jumps"]
# A BERT vocabulary for WORDS: "runs"/"jumps" split into run/jump + ##s; "red"/"grass" are [UNK].
WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "dog", "cat", "run", "jump", "##s",
                   "ball", "a", "the"]


class TinyModel(tf.Module):
    """Two linear "towers": image features @ W and a bag of hashed words, L2-normalized."""

    def __init__(self, seed: int, rows: int = BUCKETS):
        rng = np.random.default_rng(seed)
        self.image_w = tf.Variable(rng.normal(size=(D_IN, D_OUT)).astype(np.float32))
        self.word_table = tf.Variable(rng.normal(size=(rows, D_OUT)).astype(np.float32))

    def caption_ids(self, captions):
        """Ragged [N, (tokens)] rows of ``word_table`` for string [N] captions."""
        return tf.strings.to_hash_bucket_fast(tf.strings.split(captions), BUCKETS)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, examples):
        parsed = tf.io.parse_example(examples, {
            features.IMAGE_FEATURES_KEY: tf.io.FixedLenFeature([D_IN], tf.float32),
            features.CAPTION_KEY: tf.io.FixedLenFeature([], tf.string)})
        image = tf.math.l2_normalize(parsed[features.IMAGE_FEATURES_KEY] @ self.image_w, axis=1)
        ids = self.caption_ids(parsed[features.CAPTION_KEY])
        text = tf.reduce_sum(tf.gather(self.word_table, ids), axis=1)
        return {features.IMAGE_EMBEDDING_OUTPUT: image,
                features.TEXT_EMBEDDING_OUTPUT: tf.math.l2_normalize(text, axis=1)}


class TinyWordPieceModel(TinyModel):
    """TinyModel of WordPiece ids (``trainer.tokens.wordpiece``): TF-Text ops in the graph."""

    def __init__(self, seed: int):
        from trainer.tokens import wordpiece

        super().__init__(seed, rows=len(WORDPIECE_VOCAB))
        self.wordpiece = wordpiece.WordPieceEncoder(WORDPIECE_VOCAB, max_tokens=16)

    def caption_ids(self, captions):
        """``[CLS] pieces [SEP]`` ids (unpadded) of string [N] captions."""
        ids, mask = self.wordpiece(captions)
        return tf.RaggedTensor.from_tensor(ids, lengths=tf.reduce_sum(mask, axis=1))


def examples(n_images=6):
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n_images):
        image = rng.normal(size=D_IN).astype(np.float32)
        for c in range(1 + i % 3):
            caption = " ".join(rng.choice(WORDS, size=3 + (i + c) % 3))
            rows.append((f"img{i}.jpg", f"img{i}.jpg#{c}", caption, image))
    return rows


def serialize(row):
    image_id, caption_id, caption, image = row
    feats = {features.IMAGE_ID_KEY: image_id, features.CAPTION_ID_KEY: caption_id,
             features.CAPTION_KEY: caption}
    example = tf.train.Example()
    for key, value in feats.items():
        example.features.feature[key].bytes_list.value.append(value.encode())
    example.features.feature[features.IMAGE_FEATURES_KEY].float_list.value.extend(image)
    return example.SerializeToString()


def export(seed, uri, model_class=TinyModel):
    from tfx.utils import path_utils

    module = model_class(seed)
    tf.saved_model.save(module, path_utils.serving_model_dir(uri),
                        signatures={features.SERVING_DEFAULT_SIGNATURE: module.serve})
    return module


def make_workspace(root):
    """Writes the eval split and exports two models ("good", "other") under root."""
    rows = examples()
    split_dir = root / "examples" / "Split-eval"
    split_dir.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split_dir / "data.gz"), options="GZIP") as writer:
        for row in rows:
            writer.write(serialize(row))
    good = export(3, str(root / "good"))
    other = export(4, str(root / "other"))
    return {"root": root, "rows": rows, "good": good, "other": other}


def artifacts(root):
    """Examples (split eval) and the two Model artifacts of a workspace, by name."""
    from tfx.types import standard_artifacts

    eval_examples = standard_artifacts.Examples()
    eval_examples.uri = str(root / "examples")
    eval_examples.split_names = json.dumps(["eval"])
    out = {"examples": eval_examples}
    for name in ("good", "other", "broken"):
        out[name] = standard_artifacts.Model()
        out[name].uri = str(root / name)
    return out


def run_evaluator(root, name, eval_config, baseline=None, model="good"):
    """Runs the stock TFX Evaluator executor on root/examples with model root/<model>.

    Returns:
      (evaluation uri, whether the model was blessed, the blessing artifact).

    """
    from google.protobuf import json_format
    from tfx.components.evaluator import executor
    from tfx.types import standard_artifacts

    found = artifacts(root)
    inputs = {"examples": [found["examples"]], "model": [found[model]]}
    if baseline:
        inputs["baseline_model"] = [found[baseline]]
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(root / name / "evaluation"), str(root / name / "blessing")
    for artifact in (evaluation, blessing):
        os.makedirs(artifact.uri)
    executor.Executor().Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]},
                           {"eval_config": json_format.MessageToJson(eval_config),
                            "example_splits": json.dumps(["eval"])})
    return evaluation.uri, os.path.exists(os.path.join(blessing.uri, "BLESSED")), blessing
