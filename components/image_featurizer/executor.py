"""The ImageFeaturizer executor: runs the Beam featurizer into the output artifact."""

from __future__ import annotations

import logging
from typing import Any

from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components.image_featurizer import outputs
from components.image_featurizer.beam_pipeline import Limits, build_featurizer_pipeline
from components.image_featurizer.config import BackboneConfig

IMAGE_FEATURES_KEY = "image_features"
IMAGES_DIR_KEY = "images_dir"
IMAGES_FINGERPRINT_KEY = "images_fingerprint"
BACKBONE_KEY = "backbone"
FEATURES_NAME_KEY = "features_name"
MAX_PIXELS_KEY = "max_pixels"
BATCH_SIZE_KEY = "batch_size"


class Executor(base_beam_executor.BaseBeamExecutor):
    """Featurizes ``images_dir`` into the ``image_features`` artifact."""

    def Do(  # noqa: N802  (TFX executor API)
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Writes ``<name>.npy``, ``<name>.names.txt`` and ``<name>.report.json``.

        The artifact gets custom properties ``features_name``, ``feature_dim``,
        ``num_featurized`` and ``num_skipped``; skipped files are logged by name.
        """
        artifact = artifact_utils.get_single_instance(output_dict[IMAGE_FEATURES_KEY])
        name = exec_properties[FEATURES_NAME_KEY]
        with self._make_beam_pipeline() as pipeline:
            build_featurizer_pipeline(
                pipeline,
                images_dir=exec_properties[IMAGES_DIR_KEY],
                output_dir=artifact.uri,
                features_name=name,
                backbone=BackboneConfig.from_json(exec_properties[BACKBONE_KEY]),
                limits=Limits(max_pixels=int(exec_properties[MAX_PIXELS_KEY]),
                              batch_size=int(exec_properties[BATCH_SIZE_KEY])),
            )
        report = outputs.read_report(artifact.uri, name)
        artifact.set_string_custom_property(FEATURES_NAME_KEY, name)
        for key in ("feature_dim", "num_featurized", "num_skipped"):
            artifact.set_int_custom_property(key, int(report[key]))
        for entry in report["skipped"]:
            logging.warning(
                "ImageFeaturizer skipped %s (%s): %s",
                entry["file"],
                entry["reason"],
                entry["detail"],
            )
        logging.info(
            "ImageFeaturizer: %d of %d files featurized, %d skipped %s, %d converted",
            report["num_featurized"],
            report["num_files"],
            report["num_skipped"],
            report["skipped_by_reason"],
            len(report["converted"]),
        )
