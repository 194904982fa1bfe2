"""Trainer quality on real Flickr8k (train -> dev), outside TFX.

Reads the captions and MobileNetV2 features from ``../shared/data/flickr8k`` at run time, runs
the real ``preprocessing_fn`` in-process with ``tensorflow_transform.beam`` (cached under
``--work-dir``), trains with the same function as ``run_fn`` (``trainer.task.train_and_export``)
and prints eval R@1/5/10 both ways and rsum as a Markdown table row.

    python -m benchmarks.train_quality --loss fhn --mining in_batch
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from trainer import features, preprocessing, text  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "eval": "Flickr_8k.devImages.txt"}
METRICS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")


def read_captions(data_dir: pathlib.Path) -> dict[str, list[tuple[str, str]]]:
    """Image name -> [(caption_id, caption)]; captions empty after normalization are skipped."""
    captions: dict[str, list[tuple[str, str]]] = {}
    path = data_dir / "Flickr8k.token.txt"
    skipped = 0
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        caption_id, sep, caption = line.partition("\t")
        if not sep or "#" not in caption_id:
            raise ValueError(f"{path}:{line_no}: expected 'IMAGE.jpg#N<TAB>caption'")
        if not text.tokenize_py(caption):
            skipped += 1
            continue
        captions.setdefault(caption_id.rsplit("#", 1)[0], []).append((caption_id, caption))
    print(f"captions: skipped {skipped} empty after normalization", flush=True)
    return captions


def flickr8k_rows(data_dir: pathlib.Path, max_images: int | None = None) -> dict[str, list]:
    """Raw feature dicts (docs/architecture.md features) of the train and eval (dev) splits."""
    names = (data_dir / "features" / "mobilenet_v2.names.txt").read_text().split()
    matrix = np.load(data_dir / "features" / "mobilenet_v2.npy").astype(np.float32)
    row_of = {name: row for row, name in enumerate(names)}
    captions = read_captions(data_dir)
    splits = {}
    for split, list_file in SPLIT_FILES.items():
        images = (data_dir / list_file).read_text().split()[:max_images]
        splits[split] = [
            {features.IMAGE_ID_KEY: image.encode(), features.CAPTION_ID_KEY: cid.encode(),
             features.CAPTION_KEY: caption.encode(),
             features.IMAGE_FEATURES_KEY: matrix[row_of[image]]}
            for image in images for cid, caption in captions[image]]
    return splits


def raw_metadata(rows: list[dict]):
    """Raw feature spec of Flickr8k rows, as ``DatasetMetadata``.

    The id and caption strings, and the float vectors the rows carry (``image_features``;
    ``caption_features`` if present), sized from the first row.
    """
    from tensorflow_transform.tf_metadata import dataset_metadata

    spec = {key: tf.io.FixedLenFeature([], tf.string) for key in
            (features.IMAGE_ID_KEY, features.CAPTION_ID_KEY, features.CAPTION_KEY)}
    for key in (features.IMAGE_FEATURES_KEY, features.CAPTION_FEATURES_KEY):
        if key in rows[0]:
            spec[key] = tf.io.FixedLenFeature([len(rows[0][key])], tf.float32)
    return dataset_metadata.DatasetMetadata.from_feature_spec(spec)


def _write(rows, schema, path: pathlib.Path) -> None:
    coder = tft.coders.ExampleProtoCoder(schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            writer.write(coder.encode(row))


def transform_flickr8k(splits: dict[str, list], out_dir: pathlib.Path,
                       transform_config: dict | None = None) -> pathlib.Path:
    """Runs ``preprocessing_fn`` over the train rows (analyze + transform) and every other split.

    Args:
        splits: ``{"train": rows, "eval": rows, ...}`` raw feature dicts (``flickr8k_rows``);
            splits other than ``train`` are only transformed, with the train split's analysis.
        out_dir: writes ``transform/`` (the TFT output) and ``<split>/part-0.gz`` per split; an
            existing complete ``out_dir`` is reused (delete it to rerun Transform).
        transform_config: ``preprocessing_fn``'s ``custom_config`` (``TransformConfig``).

    Returns:
        ``out_dir``.

    """
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io

    if all((out_dir / name / "part-0.gz").exists() for name in splits):
        return out_dir

    def preprocessing_fn(inputs):
        return preprocessing.preprocessing_fn(inputs, transform_config)

    metadata = raw_metadata(splits["train"])
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(), force_tf_compat_v1=False):
        (train_xf, train_meta), transform_fn = (
            (splits["train"], metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn))
        transformed = {"train": train_xf}
        for name, rows in splits.items():
            if name != "train":
                transformed[name], _ = (((rows, metadata), transform_fn)
                                        | tft_beam.TransformDataset())
        _ = transform_fn | tft_beam.WriteTransformFn(str(out_dir / "transform"))
    metadata_io.write_metadata(metadata, str(out_dir / "transform" / "metadata"))
    for name, rows in transformed.items():
        _write(rows, train_meta.schema, out_dir / name / "part-0.gz")
    return out_dir


def run(config: TrainerConfig, transformed: pathlib.Path, work_dir: pathlib.Path,
        verbose: int = 2):
    """Trains + exports with ``trainer.task.train_and_export``; returns (result, seconds)."""
    from trainer import task

    start = time.perf_counter()
    result = task.train_and_export(
        config, tft.TFTransformOutput(str(transformed / "transform")),
        str(transformed / "train" / "*"), str(transformed / "eval" / "*"),
        str(work_dir / "run"), str(work_dir / "export"), verbose=verbose)
    return result, time.perf_counter() - start


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--work-dir", type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir()) / "xmodal_train_quality")
    parser.add_argument("--quick", action="store_true", help="500 images, 2 epochs")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="TrainerConfig overrides, e.g. loss=fhn mining=global epochs=6")
    return parser.parse_args(argv)


def _overrides(pairs: list[str]) -> dict:
    import yaml

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects FIELD=VALUE, got {pair!r}")
        values[key] = yaml.safe_load(value)
    return values


def main(argv=None) -> None:
    args = _parse_args(argv)
    overrides = _overrides(args.set)
    if args.quick:
        overrides.setdefault("epochs", 2)
    config = TrainerConfig.from_dict(overrides)
    max_images = 500 if args.quick else None
    cache = args.work_dir / ("transformed_quick" if args.quick else "transformed")
    transformed = transform_flickr8k(flickr8k_rows(args.data, max_images), cache)
    result, seconds = run(config, transformed, args.work_dir / "last")
    best = result.best_metrics
    print(f"config: {overrides or 'defaults'}; best epoch {result.best_epoch}; "
          f"train+eval+export {seconds:.0f} s; epochs {[round(s) for s in result.epoch_seconds]}")
    print("| " + " | ".join(METRICS) + " |")
    print("| " + " | ".join(f"{best[name]:.1f}" for name in METRICS) + " |")


if __name__ == "__main__":
    main()
