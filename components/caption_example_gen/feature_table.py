"""Precomputed feature matrices (``.npy`` [N, D] + a text file naming each row), validated."""

from __future__ import annotations

import io

import numpy as np

from components.caption_example_gen.records import IngestError
from components.caption_example_gen.validation import (
    decode_utf8,
    read_file_bytes,
    read_text_file,
    split_lines,
)


class FeatureTable:
    """A validated feature matrix indexed by row name.

    Checks, each failing with an ``IngestError`` that names the file: the matrix is 2-D with
    ``expected_dim`` columns (when given), the names file has one non-empty, unique name per row,
    and every value is finite (a non-finite value is reported with its row and name).

    Attributes:
      matrix: the features as stored (e.g. float16), shape [N, D].
      dim: D.
      index: row name -> row number.

    """

    def __init__(self, matrix_path: str, names_path: str, expected_dim: int = 0):
        """Loads and validates ``matrix_path`` ([N, D]) and ``names_path`` (N lines)."""
        self.matrix = _load_matrix(matrix_path)
        if expected_dim and self.matrix.shape[1] != expected_dim:
            raise IngestError(
                f"{matrix_path}: features have width {self.matrix.shape[1]}, expected "
                f"{expected_dim} (shape {self.matrix.shape})"
            )
        self.dim = int(self.matrix.shape[1])
        self.index = _load_names(names_path, self.matrix.shape[0], matrix_path)
        _check_finite(self.matrix, matrix_path, list(self.index))

    def row(self, name: str) -> np.ndarray | None:
        """Returns row ``name`` as float32 [D], or None when the table has no such row."""
        number = self.index.get(name)
        return None if number is None else self.matrix[number].astype(np.float32)


def _load_matrix(path: str) -> np.ndarray:
    try:
        matrix = np.load(io.BytesIO(read_file_bytes(path, "feature matrix")), allow_pickle=False)
    except ValueError as err:
        raise IngestError(f"{path}: not a NumPy .npy matrix ({err})") from err
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise IngestError(
            f"{path}: features must be a 2-D float matrix [N, D], got {matrix.dtype} "
            f"{matrix.shape}"
        )
    return matrix


def _load_names(path: str, rows: int, matrix_path: str) -> dict[str, int]:
    lines = split_lines(read_text_file(path, "feature row names"))
    if len(lines) != rows:
        raise IngestError(
            f"{path}: {len(lines)} row names for {rows} rows of {matrix_path}; one name per row"
        )
    index: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        name = decode_utf8(raw, f"{path}:{number}").strip()
        if not name:
            raise IngestError(f"{path}:{number}: empty row name")
        if name in index:
            raise IngestError(
                f"{path}:{number}: duplicate row name {name!r} (first on line {index[name] + 1})"
            )
        index[name] = number - 1
    return index


def _check_finite(matrix: np.ndarray, path: str, names: list[str]) -> None:
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise IngestError(
            f"{path}: row {bad} ({names[bad]!r}) has NaN/Inf values; {int((~finite).sum())} "
            "row(s) are not finite, features must be finite"
        )
