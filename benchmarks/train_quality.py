"""Trainer quality on real Flickr8k (train -> dev), outside TFX.

Reads the captions and MobileNetV2 features from ``../shared/data/flickr8k`` at run time, runs
the real ``preprocessing_fn`` in-process with ``tensorflow_transform.beam`` (cached under
``--work-dir``), trains with the same function as ``run_fn`` (``trainer.task.train_and_export``)
and prints eval R@1/5/10 both ways and rsum as a Markdown table row.

``--set`` lays Trainer settings over the pipeline's default model, as ``python -m pipeline run
--set trainer.KEY=VALUE`` would (``pipeline.config.from_dict``: the Transform then emits
WordPiece ids only for the ``minilm`` tower). After the table row it prints the served
``embed_text`` speed of the exported model (raw captions in): one caption's p50 and captions/s
at batch 256, so that one run compares an option of the default model (docs/minilm.md): dev
rsum, the Trainer's seconds (``train_and_export``: tables, frozen-bottom cache, epochs,
evaluations, export), the Transform's seconds (in-process, when it ran; cached per Transform
configuration) and the serving figures.

    python -m benchmarks.train_quality --set loss=hn text_tower=mean epochs=2
    python -m benchmarks.train_quality --set minilm_trainable_layers=0
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is first imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from trainer import features, preprocessing
from trainer.config import TrainerConfig  # noqa: E402
from trainer.tokens import text
from trainer.tokens.transform_config import TransformConfig  # noqa: E402

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


class _WriteExamples(beam.PTransform):
    """Transformed (RecordBatch, pass-through) pairs -> one GZIP tf.Example file at ``path``."""

    def __init__(self, schema, path: pathlib.Path):
        super().__init__()
        self._schema, self._path = schema, path

    def expand(self, batches):
        from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder

        encoder = RecordBatchToExamplesEncoder(self._schema)
        prefix, suffix = str(self._path.with_suffix("")), self._path.suffix
        return (batches | "Encode" >> beam.FlatMap(lambda pair: encoder.encode(pair[0]))
                | "Write" >> beam.io.WriteToTFRecord(prefix, file_name_suffix=suffix,
                                                     shard_name_template=""))


def transform_flickr8k(splits: dict[str, list], out_dir: pathlib.Path,
                       transform_config: dict | None = None) -> pathlib.Path:
    """Runs ``preprocessing_fn`` over the train rows (analyze + transform) and every other split.

    The rows are written as GZIP tf.Example files first and read back through TFXIO, as the TFX
    Transform component reads ExampleGen's output: handing Beam the rows as an in-memory list
    (``beam.Create``) pickles and bz2-compresses every row's image features each time the
    pipeline is serialized, which costs minutes on Flickr8k, while the transform itself
    (WordPiece included) takes seconds.

    Args:
        splits: ``{"train": rows, "eval": rows, ...}`` raw feature dicts (``flickr8k_rows``);
            splits other than ``train`` are only transformed, with the train split's analysis.
        out_dir: writes ``raw/<split>/`` (the input files), ``transform/`` (the TFT output) and
            ``<split>/part-0.gz`` per split; an existing complete ``out_dir`` is reused (delete
            it to rerun Transform).
        transform_config: ``preprocessing_fn``'s ``custom_config`` (``TransformConfig``).

    Returns:
        ``out_dir``.

    """
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io
    from tfx_bsl.public import tfxio

    if all((out_dir / name / "part-0.gz").exists() for name in splits):
        return out_dir
    metadata = raw_metadata(splits["train"])
    sources = {}
    for name, rows in splits.items():
        _write(rows, metadata.schema, out_dir / "raw" / name / "part-0.gz")
        sources[name] = tfxio.TFExampleRecord(str(out_dir / "raw" / name / "*"),
                                              schema=metadata.schema)

    def preprocessing_fn(inputs):
        return preprocessing.preprocessing_fn(inputs, transform_config)

    def read(pipeline, name: str):
        rows = pipeline | f"Read {name}" >> sources[name].BeamSource()
        return rows, sources[name].TensorAdapterConfig()

    # the folder outlives the pipeline, which runs when its ``with`` exits
    with (tempfile.TemporaryDirectory() as temp_dir, beam.Pipeline() as pipeline,
          tft_beam.Context(temp_dir=temp_dir, force_tf_compat_v1=False)):
        (train_xf, train_meta), transform_fn = read(pipeline, "train") | (
            tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=True))
        transformed = {"train": train_xf}
        for name in splits:
            if name != "train":
                transformed[name], _ = (read(pipeline, name), transform_fn) | (
                    f"Transform {name}" >> tft_beam.TransformDataset(output_record_batches=True))
        for name, batches in transformed.items():
            _ = batches | f"Write {name}" >> _WriteExamples(train_meta.schema,
                                                             out_dir / name / "part-0.gz")
        _ = transform_fn | tft_beam.WriteTransformFn(str(out_dir / "transform"))
    metadata_io.write_metadata(metadata, str(out_dir / "transform" / "metadata"))
    return out_dir


def run(config: TrainerConfig, transformed: pathlib.Path, work_dir: pathlib.Path,
        verbose: int = 2):
    """Trains + exports with ``trainer.task.train_and_export``; returns (result, seconds)."""
    from trainer import task

    start = time.perf_counter()
    data = task.TrainingData(tft.TFTransformOutput(str(transformed / "transform")),
                             str(transformed / "train" / "*"), str(transformed / "eval" / "*"))
    result = task.train_and_export(config, data, str(work_dir / "run"),
                                   str(work_dir / "export"), task.RunOptions(verbose=verbose))
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


def token_tower_overrides(pairs: list[str]) -> dict:
    """``--set FIELD=VALUE`` items laid over the masked-mean token tower.

    The speed benchmarks (``bench_training``, ``bench_stream``) time the mining and input code
    around a cheap text tower unless told otherwise.
    """
    return {"text_tower": "mean", **_overrides(pairs)}


def transformed_for(args: argparse.Namespace, overrides: dict) -> pathlib.Path:
    """The transformed Flickr8k splits that a run with these Trainer ``overrides`` reads.

    Made (or reused) by ``_transform`` with the Transform settings the pipeline would derive for
    them (no WordPiece ids for a token tower).
    """
    transform_config, _ = sections(overrides)
    return _transform(args, transform_config)[0]


def sections(overrides: dict) -> tuple[dict, dict]:
    """(Transform ``custom_config``, ``TrainerConfig`` fields) of a run.

    ``overrides`` are laid over the pipeline's default model, as ``python -m pipeline run --set
    trainer.KEY=VALUE`` would.
    """
    from pipeline import config as config_lib
    from pipeline.defaults import custom_config

    config = config_lib.from_dict({"trainer": overrides}, source="--set")
    return custom_config(config.transform), custom_config(config.trainer)


def cache_name(quick: bool, transform_config: dict) -> str:
    """The Transform cache folder of a configuration: one per distinct effective setting.

    Keyed by every field of the effective ``TransformConfig`` (its defaults laid under
    ``transform_config``), so that a change of a class default names a new folder instead of
    reusing output made under the old one.
    """
    effective = dataclasses.asdict(TransformConfig.from_dict(transform_config))
    digest = hashlib.sha256(json.dumps(effective, sort_keys=True).encode()).hexdigest()[:12]
    return f"{'transformed_quick' if quick else 'transformed'}-{digest}"


def embed_text_speed(model_dir: str, repeats: int = 100) -> tuple[float, float]:
    """(p50 ms of one caption, captions/s at batch 256) of a SavedModel's ``embed_text``.

    Raw captions [N] in, through the exported signature (Transform graph included), timed as
    ``benchmarks.bench_serving`` times its encoder.
    """
    from benchmarks.bench_serving import BATCH, QUERY, percentiles_ms
    from serving.savedmodel import load_saved_model

    embed = load_saved_model(model_dir).signatures[features.EMBED_TEXT_SIGNATURE]
    one = {features.CAPTION_KEY: tf.constant([QUERY])}
    batch = {features.CAPTION_KEY: tf.constant([f"{QUERY} number {i}" for i in range(BATCH)])}
    single, _ = percentiles_ms(lambda: embed(**one), repeats)
    batched, _ = percentiles_ms(lambda: embed(**batch), max(repeats // 10, 5))
    return single, BATCH / (batched / 1e3)


def _transform(args: argparse.Namespace, transform_config: dict) -> tuple[pathlib.Path, str]:
    """The transformed splits (made or reused) and the Transform's seconds as a table cell.

    Cached under ``args.work_dir`` by ``cache_name``; ``args.quick`` takes a 500-image slice.
    """
    cache = args.work_dir / cache_name(args.quick, transform_config)
    reused = (cache / "train" / "part-0.gz").exists() and (cache / "eval" / "part-0.gz").exists()
    start = time.perf_counter()
    transformed = transform_flickr8k(flickr8k_rows(args.data, 500 if args.quick else None),
                                     cache, transform_config)
    seconds = time.perf_counter() - start
    print(f"Transform {transform_config or 'defaults'}: "
          f"{'reused ' + str(cache) if reused else f'{seconds:.0f} s'}", flush=True)
    return transformed, "cached" if reused else f"{seconds:.0f}"


def main(argv=None) -> None:
    from trainer.train import distribute, host_speed

    args = _parse_args(argv)
    overrides = _overrides(args.set)
    if args.quick:
        overrides.setdefault("epochs", 2)
    transform_config, trainer_fields = sections(overrides)
    config = TrainerConfig.from_dict(trainer_fields)
    # Strategy first: under trainer.distribute_run's TF_CONFIG the host probe's and Transform's
    # TensorFlow ops would otherwise come before the collective ops are configured.
    distribute.strategy_for(config)
    print(host_speed.matmul_rate().describe(), flush=True)
    transformed, transform_cell = _transform(args, transform_config)
    chief = distribute.is_chief(distribute.tf_config())
    # an earlier run's checkpoints, logs and export; only the chief writes there, and workers
    # that all removed it would race each other
    if chief and (args.work_dir / "last").exists():
        shutil.rmtree(args.work_dir / "last")
    result, seconds = run(config, transformed, args.work_dir / "last")
    best = result.best_metrics
    print(f"config: {trainer_fields or 'defaults'}; best epoch {result.best_epoch}; "
          f"train+eval+export {seconds:.0f} s; epochs {[round(s) for s in result.epoch_seconds]}")
    print("| " + " | ".join(METRICS) + " |")
    print("| " + " | ".join(f"{best[name]:.1f}" for name in METRICS) + " |")
    if chief:  # the export is the chief's
        single, rate = embed_text_speed(str(args.work_dir / "last" / "export"))
        print("| option | dev rsum | Trainer s | Transform s | embed_text 1 caption p50 ms | "
              "embed_text @256 captions/s | load (1 min) |")
        print(f"| {' '.join(args.set) or 'pipeline defaults'} | {best['rsum']:.1f} | "
              f"{seconds:.0f} | {transform_cell} | {single:.1f} | {rate:,.0f} | "
              f"{os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
