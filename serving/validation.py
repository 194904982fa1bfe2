"""Checks of client inputs, run before any request is sent."""

from collections.abc import Iterable, Sequence

import numpy as np

from components.caption_example_gen.validation import check_caption


def validate_captions(captions: Sequence[str]) -> np.ndarray:
    """Checks a batch of raw captions by the rules ingestion applies to the training captions.

    A caption without any word (empty, whitespace or punctuation only) is refused, as the
    ExampleGen refuses it: the model never saw one and would still return a confident-looking
    embedding for it.

    Args:
        captions: raw caption texts.

    Returns:
        object array [N] of the captions as ``str``.

    Raises:
        ValueError: ``captions`` is not a sequence (e.g. None) or is a single string, is empty,
            or holds a non-string or wordless item (named by index).

    """
    if isinstance(captions, str | bytes):
        raise ValueError("captions must be a sequence of strings, got a single string; "
                         "wrap it in a list")
    if not isinstance(captions, Iterable):
        raise ValueError(f"captions must be a sequence of strings, got {type(captions).__name__}")
    captions = list(captions)
    if not captions:
        raise ValueError("captions is empty: give at least one caption")
    for index, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise ValueError(f"captions[{index}] must be str, got {type(caption).__name__}")
        check_caption(caption, f"captions[{index}]")
    return np.asarray(captions, dtype=object)


def validate_image_features(image_features: np.ndarray, feature_dim: int | None) -> np.ndarray:
    """Checks a batch of image features.

    Args:
        image_features: array-like [N, D].
        feature_dim: the width D the model expects, or None when the model does not fix it.

    Returns:
        float32 array [N, D].

    Raises:
        ValueError: not 2-D, no rows, wrong width, or a non-finite value (first one named by
            row and column).

    """
    values = np.asarray(image_features, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"image_features must be 2-D [N, D], got shape {values.shape}")
    if values.shape[0] == 0:
        raise ValueError("image_features is empty: give at least one row")
    if feature_dim is not None and values.shape[1] != feature_dim:
        raise ValueError(f"image_features width is {values.shape[1]}, the model expects "
                         f"D={feature_dim}")
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        row, col = bad[0]
        raise ValueError(f"image_features has {len(bad)} non-finite value(s); first at row "
                         f"{row}, column {col}: {values[row, col]}")
    return values
