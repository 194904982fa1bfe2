"""The pushed encoder an index is made with: which version, which signatures, which widths.

Read from ``saved_model.pb``'s signature definitions without loading the model (seconds for a
MiniLM encoder), so a wrong model or a missing signature is reported before the job starts.
"""

from __future__ import annotations

import dataclasses
import os
import re

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from serving.collection.sources import FEATURES
from serving.publish import list_versions
from trainer import features

_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://")


@dataclasses.dataclass(frozen=True)
class EncoderInfo:
    """The latest pushed encoder.

    Attributes:
        model_name: its served name.
        version: its version.
        directory: its SavedModel folder.
        signatures: signature name → input names.
        embedding_dim: d.
        feature_dim: D of ``embed_image`` (0 when the graph leaves it open).

    """

    model_name: str
    version: int
    directory: str
    signatures: dict[str, tuple[str, ...]]
    embedding_dim: int
    feature_dim: int

    def check_source(self, kind: str, with_captions: bool) -> None:
        """Raises ValueError when this encoder cannot embed a collection of ``kind``."""
        needed = (features.EMBED_IMAGE_SIGNATURE if kind == FEATURES
                  else features.EMBED_IMAGE_BYTES_SIGNATURE)
        if needed not in self.signatures:
            raise ValueError(f"{self.model_name} version {self.version} has no {needed!r} "
                             f"signature (it has {sorted(self.signatures)}): it cannot embed "
                             f"{'features files' if kind == FEATURES else 'photos'}")
        text_inputs = self.signatures.get(features.EMBED_TEXT_SIGNATURE, ())
        if with_captions and features.CAPTION_KEY not in text_inputs:
            raise ValueError(f"{self.model_name} version {self.version} embeds caption "
                             f"features, not text ({text_inputs}): --captions cannot be used")


def _dim(signature, name: str, outputs: bool) -> int:
    tensors = signature.outputs if outputs else signature.inputs
    if name not in tensors or not tensors[name].tensor_shape.dim:
        return 0
    return max(int(tensors[name].tensor_shape.dim[-1].size), 0)


def inspect_encoder(serving_dir: str, model_name: str, version: int | None = None) -> EncoderInfo:
    """The encoder ``<serving_dir>/<model_name>/<version>`` (default: the latest pushed).

    Raises:
        FileNotFoundError: no pushed version, or no such version.
        ValueError: its graph lacks ``embed_image`` or does not fix the embedding width.

    """
    base = os.path.join(serving_dir, model_name)
    versions = list_versions(base)
    if not versions or (version is not None and version not in versions):
        wanted = "no version" if not versions else f"no version {version}"
        raise FileNotFoundError(f"model {model_name!r} has {wanted} under {base} (found "
                                f"{versions}); run the pipeline so that the Pusher pushes one")
    version = versions[-1] if version is None else version
    directory = os.path.join(base, str(version))
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(directory, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    defs = proto.meta_graphs[0].signature_def
    signatures = {name: tuple(sorted(sig.inputs)) for name, sig in defs.items()}
    if features.EMBED_IMAGE_SIGNATURE not in defs:
        raise ValueError(f"{directory}: no {features.EMBED_IMAGE_SIGNATURE!r} signature: not an "
                         "encoder of this project")
    embed_image = defs[features.EMBED_IMAGE_SIGNATURE]
    dim = _dim(embed_image, features.IMAGE_EMBEDDING_OUTPUT, outputs=True)
    if dim < 1:
        raise ValueError(f"{directory}: embed_image does not fix the embedding width d")
    return EncoderInfo(model_name, version, directory, signatures, dim,
                       _dim(embed_image, features.IMAGE_FEATURES_KEY, outputs=False))


def stage_model(model_dir: str, work_dir: str) -> str:
    """The encoder where the job's workers can read it.

    A local model and a remote ``work_dir`` (``gs://``: Dataflow workers cannot read the
    launcher's disk) → the model is copied to ``<work_dir>/encoder``; otherwise it is used in
    place.
    """
    if _REMOTE.match(model_dir) or not _REMOTE.match(work_dir):
        return model_dir
    target = work_dir.rstrip("/") + "/encoder"
    for root, _, files in tf.io.gfile.walk(model_dir):
        relative = os.path.relpath(root, model_dir)
        folder = target if relative == "." else f"{target}/{relative}"
        tf.io.gfile.makedirs(folder)
        for name in files:
            tf.io.gfile.copy(os.path.join(root, name), f"{folder}/{name}", overwrite=True)
    return target
