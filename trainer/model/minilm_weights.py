"""Loading the all-MiniLM-L6-v2 checkpoint (HF BERT safetensors) into the Keras encoder by name.

The tensors are read with the safetensors NumPy API (no torch); torch ``Linear`` weights
``[out, in]`` are transposed to Keras kernels ``[in, out]``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from safetensors.numpy import load_file

if TYPE_CHECKING:
    from trainer.model.minilm import MiniLMEncoder

# Checkpoint tensors that the sentence encoder does not use (BERT's [CLS] pooler head and the
# constant position-id buffer); every other tensor must be loaded.
UNUSED_CHECKPOINT_PREFIXES = ("pooler.", "embeddings.position_ids")


def _checkpoint_variables(encoder: MiniLMEncoder) -> Iterator[tuple[str, tf.Variable, bool]]:
    """Yields (safetensors name, Keras variable, transpose?) for every encoder weight."""
    emb = encoder.embeddings
    yield "embeddings.word_embeddings.weight", emb.word.embeddings, False
    yield "embeddings.position_embeddings.weight", emb.position.embeddings, False
    yield "embeddings.token_type_embeddings.weight", emb.token_type.embeddings, False
    norms = [("embeddings.LayerNorm", emb.norm)]
    for i, block in enumerate(encoder.blocks):
        prefix = f"encoder.layer.{i}."
        dense = (
            ("attention.self.query", block.query),
            ("attention.self.key", block.key),
            ("attention.self.value", block.value),
            ("attention.output.dense", block.attention_output),
            ("intermediate.dense", block.intermediate),
            ("output.dense", block.output_dense),
        )
        for name, layer in dense:
            # torch Linear stores [out, in]; a Keras Dense kernel is [in, out].
            yield f"{prefix}{name}.weight", layer.kernel, True
            yield f"{prefix}{name}.bias", layer.bias, False
        norms += [(f"{prefix}attention.output.LayerNorm", block.attention_norm)]
        norms += [(f"{prefix}output.LayerNorm", block.output_norm)]
    for name, layer in norms:
        yield f"{name}.weight", layer.gamma, False
        yield f"{name}.bias", layer.beta, False


def load_safetensors_weights(encoder: MiniLMEncoder, path: str | pathlib.Path) -> None:
    """Assigns every encoder variable from the HF BERT checkpoint at ``path``, by name.

    The encoder must be built. Checkpoint tensors named by ``UNUSED_CHECKPOINT_PREFIXES`` are
    ignored by policy; any other tensor left over is an error, as is a missing one.

    Raises:
        ValueError: a tensor is missing, has the wrong shape, or is not used by the encoder.

    """
    tensors = load_file(str(path))
    used = set()
    for name, variable, transpose in _checkpoint_variables(encoder):
        if name not in tensors:
            raise ValueError(f"{path}: tensor {name!r} is missing")
        value = tensors[name].T if transpose else tensors[name]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{path}: tensor {name!r} has shape {tuple(value.shape)} "
                f"(after transpose={transpose}), the Keras variable needs {tuple(variable.shape)}"
            )
        variable.assign(value.astype(np.float32))
        used.add(name)
    left = sorted(
        n for n in tensors if n not in used and not n.startswith(UNUSED_CHECKPOINT_PREFIXES)
    )
    if left:
        raise ValueError(f"{path}: tensors not used by the encoder: {left}")
