"""The served ``minilm`` models (raw text in) vs the features-mode model, Flickr8k eval.

A frozen MiniLM encoder (``minilm_trainable_layers=0``) outputs exactly the precomputed
``minilm_l6_v2.npy`` caption features, so one training run serves two models; a third is
fine-tuned:

1. Transform (``benchmarks.train_quality.transform_flickr8k``: in-process
   ``tensorflow_transform.beam``, the real ``preprocessing_fn`` with its defaults, WordPiece
   ids included) over Flickr8k train (analyzed) and dev, raw examples carrying
   ``caption_features`` = the precomputed MiniLM rows.
2. Features mode: ``trainer.task.train_and_export`` with ``text_tower="linear"`` (the function
   ``run_fn`` calls) trains and exports ``features_model`` (``embed_text`` reads caption
   features).
3. Frozen ``minilm`` model: the towers of the exported features model are read back into a
   ``text_tower="minilm"`` build (``trainer.model.towers.build_towers``): the image tower as is, the
   linear text projection (bias-free ``[384, d]`` kernel) copied into the MiniLM tower's
   ``projection`` Dense kernel with its bias set to 0; exported with ``trainer.model.export`` as
   ``minilm_model`` (``embed_text`` reads raw captions; WordPiece runs in the Transform graph).
4. Fine-tuned ``minilm`` model: ``trainer.task.train_and_export`` with ``text_tower="minilm"``,
   the top ``--finetune-layers`` MiniLM layers trained at ``learning_rate *
   --lr-multiplier``, every other setting as the features-mode model's except the epochs
   (``--finetune-epochs``); exported as ``finetuned_model`` (raw captions in).
5. All SavedModels are loaded with ``tf.saved_model.load`` and scored on the 1,000 dev images /
   5,000 captions with ``trainer.metrics.retrieval_metrics`` through their ``embed_image`` and
   ``embed_text`` signatures.

Run: ``python -m benchmarks.report_minilm_served [--quick] [--epochs N] [--finetune-layers K]
[--lr-multiplier M] [--finetune-epochs N] [--work-dir DIR]`` (``--finetune-layers 0`` skips 4);
``make bench`` runs it with the defaults: 6 epochs, the top layer fine-tuned at x0.1.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402

from benchmarks.train_quality import (  # noqa: E402
    DEFAULT_DATA,
    METRICS,
    flickr8k_rows,
    transform_flickr8k,
)
from trainer import features, metrics, task
from trainer.config import TrainerConfig  # noqa: E402
from trainer.model import export, towers

SENTENCE_FILE = "minilm_l6_v2"
EMBED_BATCH = 256


def _lines(path: pathlib.Path) -> list[str]:
    return path.read_text(encoding="utf-8").split()


def sentence_features(data: pathlib.Path) -> tuple[np.ndarray, dict[str, int]]:
    """The precomputed MiniLM caption features float32 [35000, 384] and caption id -> row."""
    matrix = np.load(data / "features" / f"{SENTENCE_FILE}.npy").astype(np.float32)
    ids = _lines(data / "features" / f"{SENTENCE_FILE}.ids.txt")
    if len(ids) != len(matrix):
        raise ValueError(f"{data}/features/{SENTENCE_FILE}.ids.txt has {len(ids)} ids for "
                         f"{len(matrix)} rows")
    return matrix, {caption_id: row for row, caption_id in enumerate(ids)}


def rows_with_caption_features(data: pathlib.Path, max_images: int | None) -> dict[str, list]:
    """Raw feature dicts of train and eval (dev), each with its ``caption_features`` row.

    Raises:
        ValueError: a caption id without a precomputed feature row.

    """
    matrix, row_of = sentence_features(data)
    splits = flickr8k_rows(data, max_images)
    for rows in splits.values():
        for row in rows:
            caption_id = row[features.CAPTION_ID_KEY].decode()
            if caption_id not in row_of:
                raise ValueError(f"{data}/features/{SENTENCE_FILE}.ids.txt: no row for caption "
                                 f"{caption_id!r} ({features.CAPTION_ID_KEY})")
            row[features.CAPTION_FEATURES_KEY] = matrix[row_of[caption_id]]
    return splits


def copy_projection(feature_tower: keras.Model, minilm_tower: keras.Model) -> None:
    """Gives the ``minilm`` tower the linear text tower's projection.

    The ``linear`` tower is ``normalize(x @ W)`` with a bias-free kernel W [384, d]; the
    ``minilm`` tower is ``normalize(encoder(text) @ K + b)``. K := W, b := 0 make the two equal
    whenever ``x`` is the encoder's output.

    Raises:
        ValueError: the kernels' shapes differ.

    """
    kernel = feature_tower.project.kernel
    projection = minilm_tower.get_layer("projection")
    if tuple(kernel.shape) != tuple(projection.kernel.shape):
        raise ValueError(f"linear text tower kernel {tuple(kernel.shape)} does not fit the "
                         f"minilm projection kernel {tuple(projection.kernel.shape)}")
    projection.kernel.assign(kernel)
    projection.bias.assign(tf.zeros_like(projection.bias))


def export_minilm_model(features_config: TrainerConfig, features_model: pathlib.Path,
                        tf_transform_output: tft.TFTransformOutput, image_dim: int,
                        export_dir: pathlib.Path) -> None:
    """Rebuilds the exported features model's towers, maps them onto ``minilm``, exports."""
    caption_dim = int(tf_transform_output.transformed_feature_spec()[
        features.CAPTION_FEATURES_XF].shape[-1])
    image_tower, feature_tower = towers.build_towers(features_config, 0, image_dim, caption_dim)
    task.warm_start(image_tower, feature_tower, str(features_model))
    minilm_config = TrainerConfig.from_dict(
        {**dataclasses.asdict(features_config), "text_tower": "minilm",
         "minilm_trainable_layers": 0})
    _, minilm_tower = towers.build_towers(minilm_config, 0, image_dim)
    copy_projection(feature_tower, minilm_tower)
    export.export_model(image_tower, minilm_tower, tf_transform_output, features.CAPTION_KEY,
                        str(export_dir))


def _embed(signature, name: str, output: str, inputs: np.ndarray,
           order: np.ndarray) -> np.ndarray:
    """Runs ``signature(name=inputs[order])`` in batches -> ``output`` [N, d], input order."""
    chunks = []
    for start in range(0, len(order), EMBED_BATCH):
        batch = tf.constant(inputs[order[start:start + EMBED_BATCH]])
        chunks.append(signature(**{name: batch})[output].numpy())
    out = np.concatenate(chunks)
    restored = np.empty_like(out)
    restored[order] = out
    return restored


def score_saved_model(model_dir: pathlib.Path, eval_rows: list[dict], text_key: str):
    """Loads a SavedModel and scores the eval rows through ``embed_image`` / ``embed_text``.

    Returns:
        (``retrieval_metrics`` dict, text embeddings [N_c, d], seconds spent in ``embed_text``).

    """
    # TF-Text ops: registered by trainer.tokens.wordpiece
    loaded = tf.saved_model.load(str(model_dir))
    image_ids = list(dict.fromkeys(row[features.IMAGE_ID_KEY] for row in eval_rows))
    first_row = {row[features.IMAGE_ID_KEY]: row for row in reversed(eval_rows)}
    images = np.stack([first_row[i][features.IMAGE_FEATURES_KEY] for i in image_ids])
    image = _embed(loaded.signatures[features.EMBED_IMAGE_SIGNATURE], features.IMAGE_FEATURES_KEY,
                   features.IMAGE_EMBEDDING_OUTPUT, images, np.arange(len(images)))
    texts = np.array([row[text_key] for row in eval_rows])
    # Raw captions go through the encoder sorted by length: short batches cut their padding.
    order = (np.argsort([len(t) for t in texts], kind="stable") if text_key == features.CAPTION_KEY
             else np.arange(len(texts)))
    start = time.perf_counter()
    text = _embed(loaded.signatures[features.EMBED_TEXT_SIGNATURE], text_key,
                  features.TEXT_EMBEDDING_OUTPUT, texts, order)
    seconds = time.perf_counter() - start
    scores = metrics.retrieval_metrics(image, image_ids, text,
                                       [row[features.IMAGE_ID_KEY] for row in eval_rows])
    return scores, text, seconds


def _summary(results: dict[str, dict[str, float]], epochs: int) -> None:
    """The closing figures, one ``label: value`` line per served model (``make bench`` rows)."""
    print(f"== summary: report_minilm_served (served models scored through their signatures on "
          f"the Flickr8k dev split; {epochs} epochs) ==")
    print("model: " + " / ".join(METRICS))
    for name, scores in results.items():
        print(f"{name}: " + " / ".join(f"{scores[m]:.2f}" for m in METRICS))


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--work-dir", type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir()) / "xmodal_minilm_served")
    parser.add_argument("--epochs", type=int, default=6, help="features-mode model")
    parser.add_argument("--finetune-layers", type=int, default=1,
                        help="top MiniLM layers fine-tuned (0 = no fine-tuned model)")
    parser.add_argument("--lr-multiplier", type=float, default=0.1)
    parser.add_argument("--finetune-epochs", type=int, default=None,
                        help="fine-tuned model's epochs (default: --epochs)")
    parser.add_argument("--quick", action="store_true", help="300 images per split, 1 epoch")
    return parser.parse_args(argv)


def _train(config: TrainerConfig, tf_output: tft.TFTransformOutput, transformed: pathlib.Path,
           work: pathlib.Path, name: str) -> None:
    """``trainer.task.train_and_export`` into ``work/name``; prints the epochs' timing."""
    start = time.perf_counter()
    data = task.TrainingData(tf_output, str(transformed / "train" / "*"),
                             str(transformed / "eval" / "*"))
    result = task.train_and_export(config, data, str(work / f"{name}_run"), str(work / name),
                                   task.RunOptions(verbose=2))
    print(f"{name}: best epoch {result.best_epoch}, in-process eval rsum "
          f"{result.best_metrics['rsum']:.2f}; train epochs "
          f"{[round(s) for s in result.epoch_seconds]} s; train + eval + export "
          f"{time.perf_counter() - start:.0f} s", flush=True)


def _score(models: dict[str, tuple[pathlib.Path, str]], eval_rows: list[dict]) -> dict:
    """Scores each served model (name -> (directory, text input key)).

    Prints the ``embed_text`` timings, and how close the frozen model's text embeddings (the
    second model) are to the features-mode model's (the first).
    """
    results, texts = {}, {}
    for name, (directory, text_key) in models.items():
        results[name], texts[name], seconds = score_saved_model(directory, eval_rows, text_key)
        print(f"{name}: embed_text over {len(texts[name])} captions: {seconds:.0f} s", flush=True)
    features_text, frozen_text = list(texts.values())[:2]
    cosine = np.sum(features_text * frozen_text, axis=1)
    print(f"cosine(features mode, frozen minilm) text embeddings: min {cosine.min():.5f} mean "
          f"{cosine.mean():.6f}")
    return results


def transformed_flickr8k(data: pathlib.Path, work: pathlib.Path, max_images: int | None):
    """Flickr8k rows with their caption features, and their Transform output.

    The Transform runs with its defaults (WordPiece ids included), into ``work/transformed``
    (reused when complete).
    """
    splits = rows_with_caption_features(data, max_images)
    transformed = transform_flickr8k(splits, work / "transformed")
    return splits, transformed


def main(argv=None) -> None:
    """Transform, train and export the served models, score them, print the table."""
    args = _parse_args(argv)
    epochs = 1 if args.quick else args.epochs
    config = TrainerConfig.from_dict({"text_tower": "linear", "epochs": epochs})
    work = args.work_dir / ("quick" if args.quick else "full")
    clock = time.perf_counter()
    splits, transformed = transformed_flickr8k(args.data, work, 300 if args.quick else None)
    print(f"transform: {len(splits['train'])} train / {len(splits['eval'])} eval captions, "
          f"{time.perf_counter() - clock:.0f} s", flush=True)
    tf_output = tft.TFTransformOutput(str(transformed / "transform"))
    _train(config, tf_output, transformed, work, "features_model")
    image_dim = len(splits["train"][0][features.IMAGE_FEATURES_KEY])
    export_minilm_model(config, work / "features_model", tf_output, image_dim,
                        work / "minilm_model")
    models = {"features mode (`linear`, precomputed caption features in)":
              (work / "features_model", features.CAPTION_FEATURES_KEY),
              "`minilm`, frozen (raw text in)": (work / "minilm_model", features.CAPTION_KEY)}
    print(f"config: {dataclasses.asdict(config)}")
    if args.finetune_layers:
        finetune = dataclasses.replace(
            config, text_tower="minilm", minilm_trainable_layers=args.finetune_layers,
            minilm_lr_multiplier=args.lr_multiplier, epochs=args.finetune_epochs or epochs)
        _train(finetune, tf_output, transformed, work, "finetuned_model")
        models[f"`minilm`, top {args.finetune_layers} layer(s) fine-tuned at "
               f"x{args.lr_multiplier} lr, {finetune.epochs} epochs (raw text in)"] = (
            work / "finetuned_model", features.CAPTION_KEY)
    results = _score(models, splits["eval"])
    print(f"total {time.perf_counter() - clock:.0f} s")
    _summary(results, epochs)


if __name__ == "__main__":
    main()
