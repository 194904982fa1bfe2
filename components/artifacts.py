"""The project's own TFX artifact types, in a module light enough for any component to import.

Components hand these over as typed inputs and outputs, so ML Metadata records which featurizer
run fed which ExampleGen and which relevance matrix an Evaluator scored with, TFX caching keys on
them, and a cloud run needs no folder shared between components.
"""

from __future__ import annotations

from tfx.types import artifact


class ImageFeatures(artifact.Artifact):
    """``<name>.npy`` float32 [N, D], ``<name>.names.txt`` and ``<name>.report.json``.

    The custom property ``features_name`` holds ``<name>``.
    """

    TYPE_NAME = "xmodal.ImageFeatures"  # namespaced: KFP v2 requires ns.Name


class RelevanceMatrix(artifact.Artifact):
    """``<content key>.npy`` float32 [N_txt, N_img] and ``<content key>.json`` (the ids)."""

    TYPE_NAME = "xmodal.RelevanceMatrix"  # namespaced: KFP v2 requires ns.Name
