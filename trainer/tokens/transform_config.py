"""Transform hyperparameters, importable without TensorFlow.

``trainer.preprocessing`` (which needs TensorFlow Transform) re-exports these names; the pipeline
command line imports this module to check a configuration before any heavy import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# The token vocabulary's asset name in the Transform output and in every exported SavedModel.
VOCAB_NAME = "caption_tokens"
NO_SCALING = "none"
L2_ROW = "l2_row"
Z_SCORE = "zscore"
L2_COLUMN = "l2_column"
SCALINGS = (NO_SCALING, L2_ROW, Z_SCORE, L2_COLUMN)

_POSITIVE_INTS = ("max_tokens", "vocab_frequency_threshold", "num_oov_buckets")
_SCALING_FIELDS = ("image_scaling", "caption_features_scaling")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """Transform hyperparameters (the Transform component's ``custom_config``).

    Attributes:
        max_tokens: caption length L after padding/truncation (tokens beyond L are dropped).
        vocab_top_k: keep at most this many most frequent tokens; None keeps all.
        vocab_frequency_threshold: keep tokens seen at least this often in the analyzed split.
        num_oov_buckets: hash buckets for out-of-vocabulary tokens (>= 1, so that an unknown
            token never collides with padding id 0).
        image_scaling: one of ``SCALINGS``: ``none``; ``l2_row`` (each row to unit L2 norm);
            ``zscore`` (per-dimension standardization over the analyzed split); ``l2_column``
            (each dimension divided by its L2 norm over the analyzed split, as the paper's code).
        caption_features_scaling: the same choice for the optional ``caption_features``.
        wordpiece_max_tokens: when set (>= 3), also emit MiniLM WordPiece ids and mask of this
            length (``trainer.tokens.wordpiece``) for the ``minilm`` text tower (the default
            tower; 64 holds every Flickr8k caption: the longest has 42 WordPiece pieces); None
            emits none.

    """

    max_tokens: int = 32
    vocab_top_k: int | None = None
    vocab_frequency_threshold: int = 2
    num_oov_buckets: int = 1
    image_scaling: str = Z_SCORE
    caption_features_scaling: str = L2_ROW
    wordpiece_max_tokens: int | None = 64

    def __post_init__(self) -> None:
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"TransformConfig.{name} must be an integer >= 1, got {value!r}")
        if self.vocab_top_k is not None and (not _is_int(self.vocab_top_k) or self.vocab_top_k < 1):
            raise ValueError(
                f"TransformConfig.vocab_top_k must be None or an integer >= 1, "
                f"got {self.vocab_top_k!r}"
            )
        wordpiece_tokens = self.wordpiece_max_tokens
        if wordpiece_tokens is not None and (not _is_int(wordpiece_tokens) or wordpiece_tokens < 3):
            raise ValueError(
                f"TransformConfig.wordpiece_max_tokens must be None or an integer >= 3, "
                f"got {wordpiece_tokens!r}"
            )
        for name in _SCALING_FIELDS:
            if getattr(self, name) not in SCALINGS:
                raise ValueError(
                    f"TransformConfig.{name} must be one of {SCALINGS}, got {getattr(self, name)!r}"
                )

    @classmethod
    def from_dict(cls, custom_config: Mapping[str, Any] | None) -> TransformConfig:
        """Builds the config from the component's ``custom_config`` (None: all defaults).

        Raises:
            ValueError: an unknown key (all of them are named) or a bad value.

        """
        values = dict(custom_config or {})
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown TransformConfig keys {unknown}")
        return cls(**values)
