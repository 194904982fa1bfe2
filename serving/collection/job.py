"""The embedding job: a Beam pipeline that embeds a collection with the pushed encoder.

In the spirit of TFX's BulkInferrer: items are spread over workers (``Reshuffle``), each photo
is read (bounded), hashed and checked, unchanged ones (same id and SHA-256 as in the previous
index of the same model version) are only named, and the rest go through ``RunInference`` with
the encoder SavedModel in batches: ``embed_image_bytes`` for photos, ``embed_image`` for rows of
a features file, ``embed_text`` for captions. The job writes, under its output folder:

* ``photos-*.tfrecord`` and ``captions-*.tfrecord``: sharded ``tf.train.Example`` records with
  ``id``, ``hash`` (photos), ``photo_id`` and ``text`` (captions) and ``embedding`` (floats),
* ``reused.jsonl``: ``[id, hash]`` of each unchanged photo, ``skipped.jsonl``: ``{"file",
  "reason", "detail"}`` of each photo left out.

Nothing is gathered in one process; DirectRunner runs it locally, Dataflow (``--runner
DataflowRunner`` and its options) unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)

from serving.collection.sources import FEATURES, Captions, Listing, read_features
from serving.validation import DEFAULT_MAX_IMAGE_BYTES, check_image_bytes
from trainer import features
from trainer.features import DEFAULT_MAX_PIXELS, JPEG_END, JPEG_MAGIC, PNG_END, PNG_MAGIC

PHOTO_SHARDS = "photos"
CAPTION_SHARDS = "captions"
REUSED_FILE = "reused.jsonl"
SKIPPED_FILE = "skipped.jsonl"
SHARD_SUFFIX = ".tfrecord"
METRICS_NAMESPACE = "CollectionIndex"
_EMBEDDED, _REUSED, _SKIPPED = "embedded", "reused", "skipped"
# Why a photo is left out (the manifest's ``reason``).
EMPTY, TOO_LARGE, NOT_AN_IMAGE, TRUNCATED, CORRUPT, UNREADABLE, NON_FINITE = (
    "empty", "too_large", "not_an_image", "truncated", "corrupt", "unreadable", "non_finite")


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One run of the embedding job.

    Attributes:
        listing: the collection's items.
        model_dir: the encoder SavedModel (readable by the workers).
        output_dir: where the shards and lists go (readable by the launcher afterwards).
        previous: id → hash of the photos already embedded by this model version.
        captions: captions to embed (None: none).
        batch_size: the most items per ``RunInference`` call.
        max_bytes: larger photo files are skipped (``too_large``) without being read.
        max_pixels: photos declaring more pixels are skipped (``too_large``).

    """

    listing: Listing
    model_dir: str
    output_dir: str
    previous: dict[str, str]
    captions: Captions | None = None
    batch_size: int = 32
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


def skip_reason(data: bytes, error: str, max_bytes: int) -> str:
    """The manifest reason of a photo that ``check_image_bytes`` refused with ``error``."""
    if not data:
        return EMPTY
    if len(data) > max_bytes or "too large" in error:
        return TOO_LARGE
    if not data.startswith((JPEG_MAGIC, PNG_MAGIC)):
        return NOT_AN_IMAGE
    if (JPEG_END if data.startswith(JPEG_MAGIC) else PNG_END) not in data:
        return TRUNCATED
    return CORRUPT


def _skipped(name: str, reason: str, detail: str) -> beam.pvalue.TaggedOutput:
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"skipped_{reason}").inc()
    return beam.pvalue.TaggedOutput(_SKIPPED, {"file": name, "reason": reason, "detail": detail})


class ReadPhotoFn(beam.DoFn):
    """(path, id, size) → ((id, hash), bytes) to embed, or a reused / skipped entry."""

    def __init__(self, previous: dict[str, str], max_bytes: int, max_pixels: int):
        self._previous, self._max_bytes, self._max_pixels = previous, max_bytes, max_pixels

    def process(self, item: tuple[str, str, int]) -> Iterator[Any]:
        """Reads at most ``max_bytes + 1`` bytes, hashes them and checks them."""
        path, photo_id, size = item
        if size > self._max_bytes:
            yield _skipped(photo_id, TOO_LARGE, f"{size} bytes is over the limit of "
                           f"{self._max_bytes} bytes")
            return
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                data = f.read(self._max_bytes + 1)
        except OSError as err:
            yield _skipped(photo_id, UNREADABLE, str(err))
            return
        digest = hashlib.sha256(data).hexdigest()
        if self._previous.get(photo_id) == digest:
            yield beam.pvalue.TaggedOutput(_REUSED, (photo_id, digest))
            return
        try:
            check_image_bytes(data, photo_id, self._max_bytes, self._max_pixels)
        except ValueError as err:
            detail = str(err).removeprefix(f"{photo_id}: ")
            yield _skipped(photo_id, skip_reason(data, detail, self._max_bytes), detail)
            return
        yield (photo_id, digest), data


class FeatureRowFn(beam.DoFn):
    """(id, row) of a features file → ((id, hash), row), or a reused / skipped entry."""

    def __init__(self, previous: dict[str, str]):
        self._previous = previous

    def process(self, item: tuple[str, np.ndarray]) -> Iterator[Any]:
        """Hashes the row's float32 bytes; a row with a NaN or infinity is skipped."""
        name, row = item
        row = np.asarray(row, np.float32)
        digest = hashlib.sha256(row.tobytes()).hexdigest()
        if not np.all(np.isfinite(row)):
            yield _skipped(name, NON_FINITE, "the features row holds a NaN or infinity")
        elif self._previous.get(name) == digest:
            yield beam.pvalue.TaggedOutput(_REUSED, (name, digest))
        else:
            yield (name, digest), row


class EncoderHandler(ModelHandler[Any, PredictionResult, Any]):
    """One signature of the encoder SavedModel; a batch the graph refuses is retried item by item.

    Args:
        model_dir: the SavedModel.
        signature: ``embed_image_bytes``, ``embed_image`` or ``embed_text``.
        max_batch_size: the most items per call.

    """

    _INPUTS = {features.EMBED_IMAGE_BYTES_SIGNATURE: (features.IMAGE_BYTES_INPUT,
                                                       features.IMAGE_EMBEDDING_OUTPUT),
               features.EMBED_IMAGE_SIGNATURE: (features.IMAGE_FEATURES_KEY,
                                                features.IMAGE_EMBEDDING_OUTPUT),
               features.EMBED_TEXT_SIGNATURE: (features.CAPTION_KEY,
                                               features.TEXT_EMBEDDING_OUTPUT)}

    def __init__(self, model_dir: str, signature: str, max_batch_size: int = 32):
        super().__init__()
        self._model_dir, self._signature = model_dir, signature
        self._input, self._output = self._INPUTS[signature]
        self._max_batch_size = max_batch_size

    def load_model(self) -> Any:
        """Loads the SavedModel (with this project's custom ops registered)."""
        from serving.savedmodel import load_saved_model

        return load_saved_model(self._model_dir)

    def _call(self, model: Any, batch: Sequence[Any]) -> np.ndarray:
        import tensorflow as tf

        values = (np.stack(batch).astype(np.float32) if self._input == features.IMAGE_FEATURES_KEY
                  else np.asarray(list(batch), dtype=object))
        out = model.signatures[self._signature](**{self._input: tf.constant(values)})
        return out[self._output].numpy()

    def run_inference(self, batch: Sequence[Any], model: Any,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        """Embeds ``batch``; an item the graph refuses gets its error text as inference."""
        import tensorflow as tf

        from serving.tf_errors import error_detail

        try:
            return [PredictionResult(None, row) for row in self._call(model, batch)]
        except tf.errors.InvalidArgumentError:
            results = []
            for item in batch:
                try:
                    results.append(PredictionResult(None, self._call(model, [item])[0]))
                except tf.errors.InvalidArgumentError as err:
                    results.append(PredictionResult(None, error_detail(err.message)))
            return results

    def batch_elements_kwargs(self) -> dict[str, int]:
        """Up to ``max_batch_size`` items per call."""
        return {"min_batch_size": self._max_batch_size, "max_batch_size": self._max_batch_size}

    def get_metrics_namespace(self) -> str:
        """RunInference's metrics namespace."""
        return METRICS_NAMESPACE


def _to_record(key: tuple[str, ...], result: PredictionResult) -> Iterator[Any]:
    """A ``tf.train.Example`` of one embedded item, or a skipped entry (the graph refused it)."""
    import tensorflow as tf

    if isinstance(result.inference, str):
        yield _skipped(key[0], CORRUPT, result.inference)
        return
    fields = {"id": key[0], "hash" if len(key) == 2 else "photo_id": key[1]}
    if len(key) == 3:
        fields["text"] = key[2]
    feature = {name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
               for name, value in fields.items()}
    feature["embedding"] = tf.train.Feature(float_list=tf.train.FloatList(
        value=np.asarray(result.inference, np.float32)))
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, "embedded").inc()
    yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _items(spec: JobSpec) -> list[Any]:
    listing = spec.listing
    if listing.kind == FEATURES:
        matrix = read_features(listing.root)
        return [(name, np.asarray(matrix[row], np.float32))
                for row, name in enumerate(listing.ids)]
    return list(zip(listing.paths, listing.ids, listing.sizes, strict=True))


def _write_lines(pcoll: beam.PCollection, path: str, label: str) -> None:
    _ = (pcoll | f"{label}Json" >> beam.Map(json.dumps)
         | f"{label}Write" >> beam.io.WriteToText(path, shard_name_template="", num_shards=1))


def build_job(pipeline: beam.Pipeline, spec: JobSpec) -> None:
    """Adds the embedding job of ``spec`` to ``pipeline`` (run it to write the outputs)."""
    out = spec.output_dir.rstrip("/") + "/"
    is_features = spec.listing.kind == FEATURES
    read_fn = (FeatureRowFn(spec.previous) if is_features
               else ReadPhotoFn(spec.previous, spec.max_bytes, spec.max_pixels))
    signature = (features.EMBED_IMAGE_SIGNATURE if is_features
                 else features.EMBED_IMAGE_BYTES_SIGNATURE)
    read = (pipeline | "List" >> beam.Create(_items(spec)) | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(read_fn).with_outputs(_REUSED, _SKIPPED, main=_EMBEDDED))
    embedded = (read[_EMBEDDED] | "Embed" >> RunInference(KeyedModelHandler(
        EncoderHandler(spec.model_dir, signature, spec.batch_size)))
        | "Records" >> beam.FlatMapTuple(_to_record).with_outputs(_SKIPPED, main=_EMBEDDED))
    _ = embedded[_EMBEDDED] | "WritePhotos" >> beam.io.WriteToTFRecord(
        out + PHOTO_SHARDS, file_name_suffix=SHARD_SUFFIX)
    skipped = (read[_SKIPPED], embedded[_SKIPPED]) | "AllSkipped" >> beam.Flatten()
    _write_lines(skipped, out + SKIPPED_FILE, "Skipped")
    _write_lines(read[_REUSED], out + REUSED_FILE, "Reused")
    if spec.captions is not None and spec.captions.ids:
        rows = [((cid, photo, text), text) for cid, photo, text in zip(
            spec.captions.ids, spec.captions.photo_ids, spec.captions.texts, strict=True)]
        captions = (pipeline | "ListCaptions" >> beam.Create(rows)
                    | "EmbedCaptions" >> RunInference(KeyedModelHandler(EncoderHandler(
                        spec.model_dir, features.EMBED_TEXT_SIGNATURE, spec.batch_size * 8)))
                    | "CaptionRecords" >> beam.FlatMapTuple(_to_record).with_outputs(
                        _SKIPPED, main=_EMBEDDED))
        _ = captions[_EMBEDDED] | "WriteCaptions" >> beam.io.WriteToTFRecord(
            out + CAPTION_SHARDS, file_name_suffix=SHARD_SUFFIX)
        _write_lines(captions[_SKIPPED], out + "caption_" + SKIPPED_FILE, "CaptionSkipped")
