"""The featurizer's files, in the layout the caption ExampleGen reads.

``<dir>/<name>.npy`` float32 [N, D] (row i = the image on line i of) ``<dir>/<name>.names.txt``,
like ``flickr8k/features/mobilenet_v2.*``, plus ``<dir>/<name>.report.json`` listing every
skipped file (with its reason) and every converted file (mode change and/or resize).
"""

from __future__ import annotations

import collections
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_RAW = CompressionTypes.UNCOMPRESSED


def output_paths(directory: str, features_name: str) -> dict[str, str]:
    """Paths of the ``features`` (.npy), ``names`` (.names.txt) and ``report`` (.json) files."""
    stem = FileSystems.join(directory, features_name)
    return {
        "features": f"{stem}.npy",
        "names": f"{stem}.names.txt",
        "report": f"{stem}.report.json",
    }


def build_report(
    num_files: int,
    rows: Sequence[tuple[str, np.ndarray]],
    skipped: Sequence[Mapping[str, Any]],
    converted: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The JSON report: counts, then every skipped and converted file sorted by name."""
    reasons = collections.Counter(entry["reason"] for entry in skipped)
    return {
        "num_files": num_files,
        "num_featurized": len(rows),
        "num_skipped": len(skipped),
        "skipped_by_reason": dict(sorted(reasons.items())),
        "num_mode_converted": sum(1 for entry in converted if entry["from_mode"]),
        "num_resized": sum(1 for entry in converted if entry["resized"]),
        "skipped": sorted(skipped, key=lambda entry: entry["file"]),
        "converted": sorted(converted, key=lambda entry: entry["file"]),
    }


def write_outputs(
    directory: str,
    features_name: str,
    rows: Sequence[tuple[str, np.ndarray]],
    report: Mapping[str, Any],
) -> dict[str, str]:
    """Writes the three files; rows are sorted by image name.

    Args:
      directory: the output folder (any Beam filesystem).
      features_name: the file stem.
      rows: (image name, float32 [D] features) pairs.
      report: see ``build_report``.

    Returns:
      The written paths (``output_paths``).

    Raises:
      ValueError: when no image was featurized (nothing to write), naming the skip reasons.

    """
    if not rows:
        raise ValueError(
            f"no image could be featurized ({report['num_files']} files, skipped by reason: "
            f"{report['skipped_by_reason']}); first skipped: {report['skipped'][:5]}"
        )
    ordered = sorted(rows, key=lambda row: row[0])
    matrix = np.stack([row[1] for row in ordered]).astype(np.float32)
    paths = output_paths(directory, features_name)
    _ensure_dir(directory)
    buffer = io.BytesIO()
    np.save(buffer, matrix)
    _write(paths["features"], buffer.getvalue())
    _write(paths["names"], "".join(f"{name}\n" for name, _ in ordered).encode())
    full_report = {**report, "feature_dim": int(matrix.shape[1])}
    _write(paths["report"], json.dumps(full_report, indent=1).encode())
    return paths


def read_outputs(directory: str, features_name: str) -> tuple[list[str], np.ndarray, dict]:
    """Reads back (names, float32 [N, D] features, report)."""
    paths = output_paths(directory, features_name)
    with FileSystems.open(paths["features"], compression_type=_RAW) as handle:
        matrix = np.load(io.BytesIO(handle.read()))
    names = _read(paths["names"]).decode("utf-8-sig").splitlines()  # BOM/CRLF-tolerant
    report = read_report(directory, features_name)
    if len(names) != matrix.shape[0]:
        raise ValueError(f"{paths['names']}: {len(names)} names for {matrix.shape[0]} rows")
    return names, matrix, report


def read_report(directory: str, features_name: str) -> dict[str, Any]:
    """Reads back the JSON report."""
    return json.loads(_read(output_paths(directory, features_name)["report"]))


def _ensure_dir(directory: str) -> None:
    if not FileSystems.exists(directory):
        FileSystems.mkdirs(directory)


def _read(path: str) -> bytes:
    with FileSystems.open(path, compression_type=_RAW) as handle:
        return handle.read()


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type=_RAW) as handle:
        handle.write(data)
