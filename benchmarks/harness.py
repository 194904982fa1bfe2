"""Shared pieces of the performance benchmarks: Flickr8k tables, timing, peak memory, matmul roof.

The benchmarks compare figures measured side by side in one run (the machine is shared and
noisy), so everything here measures; nothing here stores or compares to a remembered number.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import gc  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import features, preprocessing  # noqa: E402
from trainer.inputs.data import SplitTables  # noqa: E402

DEFAULT_FLICKR8K = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
GIB = 2.0**30


def flickr8k_dir(path: str | None) -> pathlib.Path:
    """The Flickr8k folder (``$FLICKR8K_DIR``, else ``../shared/data/flickr8k``), checked."""
    folder = pathlib.Path(path or os.environ.get("FLICKR8K_DIR") or DEFAULT_FLICKR8K)
    if not (folder / "features" / "mobilenet_v2.npy").is_file():
        raise FileNotFoundError(f"Flickr8k features not found under {folder} (features/*.npy)")
    return folder


def read_lines(path: pathlib.Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file, stripped."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def feature_matrix(folder: pathlib.Path, stem: str,
                   names_suffix: str) -> tuple[np.ndarray, list[str]]:
    """``features/<stem>.npy`` as float32 [N, D] and its N row names (``<stem>.<suffix>``).

    Raises:
        ValueError: the names file has another number of lines than the matrix has rows.

    """
    matrix = np.load(folder / "features" / f"{stem}.npy").astype(np.float32)
    names_path = folder / "features" / f"{stem}.{names_suffix}"
    names = read_lines(names_path)
    if len(names) != len(matrix):
        raise ValueError(f"{names_path}: {len(names)} names for {len(matrix)} rows of {stem}.npy")
    return matrix, names


def _split_tables(image_rows: np.ndarray, image_ids: list[str], caption_rows: np.ndarray,
                  caption_ids: list[str]) -> SplitTables:
    """One split: captions grouped under their image ids (``IMAGE#N``)."""
    position = {image_id: row for row, image_id in enumerate(image_ids)}
    caption_image = [caption_id.rsplit("#", 1)[0] for caption_id in caption_ids]
    return SplitTables(
        image_features=image_rows,
        image_ids=np.array([name.encode() for name in image_ids], dtype=object),
        text={features.CAPTION_FEATURES_XF: caption_rows},
        text_image_index=np.array([position[name] for name in caption_image], np.int64),
        caption_ids=np.array([name.encode() for name in caption_ids], dtype=object),
    )


def _check_default_scalings() -> None:
    """The NumPy scalings below mirror the Transform defaults; fail loudly if those change."""
    config = preprocessing.TransformConfig()
    expected = (preprocessing.Z_SCORE, preprocessing.L2_ROW)
    if (config.image_scaling, config.caption_features_scaling) != expected:
        raise RuntimeError(f"Transform default scalings are now {config.image_scaling!r}/"
                           f"{config.caption_features_scaling!r}; update benchmarks/harness.py")


def flickr8k_tables(path: str | None = None) -> tuple[SplitTables, SplitTables]:
    """Flickr8k train (6000 images, 30000 captions) and dev (1000, 5000) as ``SplitTables``.

    Image features are MobileNetV2 [N, 1280] z-scored with the train statistics and caption
    features are MiniLM [N, 384] rows scaled to unit norm: the Transform defaults
    (``TransformConfig``), applied in NumPy so the benchmark needs no TFX run.

    Args:
        path: the dataset folder, or None for the default.

    Returns:
        ``(train, eval)`` tables with text key ``CAPTION_FEATURES_XF``.

    """
    _check_default_scalings()
    folder = flickr8k_dir(path)
    images, image_names = feature_matrix(folder, "mobilenet_v2", "names.txt")
    captions, caption_names = feature_matrix(folder, "minilm_l6_v2", "ids.txt")
    captions /= np.maximum(np.linalg.norm(captions, axis=1, keepdims=True), 1e-12)
    image_row = {name: row for row, name in enumerate(image_names)}
    caption_rows: dict[str, list[int]] = {}
    for row, caption_id in enumerate(caption_names):
        caption_rows.setdefault(caption_id.rsplit("#", 1)[0], []).append(row)
    splits = []
    for list_name in ("Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt"):
        names = read_lines(folder / list_name)
        missing = [name for name in names if name not in image_row or name not in caption_rows]
        if missing:
            raise ValueError(f"{folder / list_name}: {len(missing)} images without features, "
                             f"first {missing[0]!r}")
        rows = [row for name in names for row in caption_rows[name]]
        splits.append((images[[image_row[name] for name in names]], names, captions[rows],
                       [caption_names[row] for row in rows]))
    mean, std = splits[0][0].mean(axis=0), splits[0][0].std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    return tuple(_split_tables((image - mean) / scale, names, text, ids)
                 for image, names, text, ids in splits)


def wall_times(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall times in seconds of ``repeats`` calls of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls."""
    return statistics.median(wall_times(fn, repeats, warmup))


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int,
                        warmup: int = 1) -> dict[str, float]:
    """Median wall time of each ``fn`` over ``rounds`` rounds that call every fn once, in turn.

    Interleaving exposes every function to the same machine load, so that their ratios hold on a
    noisy, shared machine; the median drops one-off stalls.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_step(dtype: tf.DType, size: int = 4096) -> tuple[Callable[[], object], int]:
    """A plain ``tf.matmul`` of two [size, size] matrices as a callable, and its FLOP (2 size^3)."""
    a = tf.random.normal([size, size], dtype=tf.float32, seed=1)
    b = tf.random.normal([size, size], dtype=tf.float32, seed=2)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32)))
    return (lambda: product().numpy()), 2 * size**3


def allocator_peak_extra(fn: Callable[[], object], device: str = "CPU:0") -> int:
    """Peak bytes that TensorFlow's allocator holds during ``fn()`` above what it held before.

    Reads the allocator's own statistics (``tf.config.experimental.get_memory_info``), which
    count every tensor buffer exactly, unlike process RSS (the oneDNN CPU allocator keeps freed
    blocks in a pool, so RSS only shows the lifetime high-water mark). Garbage is collected
    first: tensors of unreachable objects (an earlier benchmark's bank, held in reference cycles
    by its traced functions) freed during ``fn()`` would otherwise hide its peak.
    """
    gc.collect()
    tf.config.experimental.reset_memory_stats(device)
    before = tf.config.experimental.get_memory_info(device)["current"]
    fn()
    return max(tf.config.experimental.get_memory_info(device)["peak"] - before, 0)


def machine_line() -> str:
    """CPU count and load averages: how busy the (shared) machine was during the figures."""
    one, five, _ = os.getloadavg()
    return f"machine: {os.cpu_count()} CPUs, load average {one:.1f} (1 min) / {five:.1f} (5 min)"

