"""The Beam pipeline: list -> read + decode -> RunInference (batched) -> one features file.

File paths are reshuffled across workers; ``DecodeImageFn`` emits (name, pixels [H, W, 3]) and
tags skipped/converted files (PIL decodes for the ``tflite``/``keras``/``saved_model`` backbones,
TensorFlow for ``tf``, exactly as the served ``embed_image_bytes`` graph decodes);
``RunInference`` with a keyed handler maps each batch to
(name, float32 [D]); everything is gathered once and written by ``outputs.write_outputs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from components.image_featurizer import decoding, outputs
from components.image_featurizer.config import TF, BackboneConfig
from components.image_featurizer.handlers import (
    METRICS_NAMESPACE,
    decode_with_tf,
    make_model_handler,
)
from components.image_featurizer.sources import list_image_files, relative_name

IMAGES_TAG = "images"
SKIPPED_TAG = "skipped"
CONVERTED_TAG = "converted"


Decoder = Callable[[bytes, str, tuple[int, int], int], decoding.DecodedImage]


class DecodeImageFn(beam.DoFn):
    """File path -> (name, pixels [H, W, 3]); skipped and converted files go to tagged outputs.

    Args:
      images_dir: the folder the names are relative to.
      image_size: (height, width) of the model input.
      max_pixels: larger images are skipped.
      decode: ``decoding.decode_image`` (PIL) or ``handlers.decode_with_tf``.

    """

    def __init__(self, images_dir: str, image_size: tuple[int, int], max_pixels: int,
                 decode: Decoder = decoding.decode_image):
        self._images_dir = images_dir
        self._image_size = tuple(image_size)
        self._max_pixels = max_pixels
        self._decode = decode

    def process(self, path: str) -> Iterator[Any]:
        """Decodes one file (see ``decoding`` for the policy) and counts what happened."""
        name = relative_name(self._images_dir, path)
        try:
            image = self._decode(
                _read_bytes(path, name), name, self._image_size, self._max_pixels
            )
        except decoding.ImageSkipped as skipped:
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"skipped_{skipped.reason}").inc()
            entry = {"file": name, "reason": skipped.reason, "detail": skipped.detail}
            yield beam.pvalue.TaggedOutput(SKIPPED_TAG, entry)
            return
        resized = image.original_size != (self._image_size[1], self._image_size[0])
        if image.converted_from or resized:
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, "converted").inc()
            yield beam.pvalue.TaggedOutput(
                CONVERTED_TAG,
                {
                    "file": name,
                    "from_mode": image.converted_from,
                    "resized": resized,
                    "original_size": list(image.original_size),
                },
            )
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "decoded").inc()
        yield name, image.pixels


def _read_bytes(path: str, name: str) -> bytes:
    """The file's bytes, as stored (no decompression by extension)."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return handle.read()
    except OSError as err:
        raise decoding.ImageSkipped(name, decoding.UNREADABLE, str(err)) from err


def _write(
    rows: list,
    skipped: list,
    converted: list,
    output_dir: str,
    features_name: str,
    num_files: int,
) -> None:
    report = outputs.build_report(num_files, rows, skipped, converted)
    outputs.write_outputs(output_dir, features_name, rows, report)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one featurizer run accepts and batches.

    Attributes:
      max_pixels: images with more pixels are skipped as ``too_large``.
      batch_size: the most images per RunInference call.

    """

    max_pixels: int = decoding.DEFAULT_MAX_PIXELS
    batch_size: int = 32


def build_featurizer_pipeline(
    pipeline: beam.Pipeline,
    images_dir: str,
    output_dir: str,
    features_name: str,
    backbone: BackboneConfig,
    limits: Limits = Limits(),
) -> None:
    """Adds the featurizer to ``pipeline``; running it writes ``outputs.output_paths(...)``.

    Args:
      pipeline: the Beam pipeline (any runner; Dataflow/Flink scale the decode and inference).
      images_dir: the folder of image files (listed now, on the launching machine).
      output_dir: where the .npy, .names.txt and .report.json files go.
      features_name: their file stem.
      backbone: the frozen model.
      limits: the pixel limit (larger images are skipped as ``too_large``) and batch size.

    """
    paths = [meta.path for meta in list_image_files(images_dir)]
    decode = decode_with_tf if backbone.kind == TF else decoding.decode_image
    decoded = (
        pipeline
        | "ListImages" >> beam.Create(paths)
        | "Spread" >> beam.Reshuffle()
        | "Decode"
        >> beam.ParDo(
            DecodeImageFn(images_dir, backbone.image_size, limits.max_pixels, decode)
        ).with_outputs(
            SKIPPED_TAG, CONVERTED_TAG, main=IMAGES_TAG
        )
    )
    handler = KeyedModelHandler(make_model_handler(backbone, limits.batch_size))
    rows = (
        decoded[IMAGES_TAG]
        | "Featurize" >> RunInference(handler)
        | "Unwrap" >> beam.MapTuple(lambda name, result: (name, result.inference))
        | "CollectRows" >> beam.combiners.ToList()
    )
    skipped = decoded[SKIPPED_TAG] | "CollectSkipped" >> beam.combiners.ToList()
    converted = decoded[CONVERTED_TAG] | "CollectConverted" >> beam.combiners.ToList()
    _ = rows | "Write" >> beam.Map(
        _write,
        beam.pvalue.AsSingleton(skipped),
        beam.pvalue.AsSingleton(converted),
        output_dir=output_dir,
        features_name=features_name,
        num_files=len(paths),
    )
