"""The default tower's Trainer on Flickr8k train captions, and its step timed several ways.

``build_setup`` makes the pipeline's default towers, WordPiece ids of the train captions (as
the Transform makes them), the cached frozen bottom (computed once), and one ``PairTrainer``
per variant: today's padded top layer in float32, and the flat top layer
(``trainer.model.unpadded``) in float32 and bfloat16. They share the towers, which they train in
place.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from benchmarks import harness
from trainer.config import TrainerConfig
from trainer.inputs import data, frozen_prefix
from trainer.inputs.training_rows import TrainingRows
from trainer.model import towers, unpadded
from trainer.model.precision import FLOAT32, Policy
from trainer.tokens import wordpiece
from trainer.tokens.transform_config import TransformConfig
from trainer.train import training

BF16 = Policy("bfloat16", "benchmark: bfloat16 matmuls")


class PaddedPrefix(tf.Module):
    """Today's embedding of cached rows: the trained layers on captions padded to the longest."""

    def __init__(self, flat: unpadded.FlatPrefix):
        super().__init__(name="padded_prefix")
        self.flat, self.tower, self.first_block = flat, flat.tower, flat.first_block

    def sentence(self, index: tf.Tensor) -> tf.Tensor:
        """``MiniLMEncoder.top`` of rows ``index`` [B], padded: pooled states [B, H]."""
        tokens = self.flat.tokens(index)
        hidden = tokens.to_tensor()
        mask = tf.sequence_mask(tokens.row_lengths(), tf.shape(hidden)[1], tf.float32)
        return self.tower.encoder.top(hidden, mask, self.flat.first_block)

    def embed(self, index: tf.Tensor) -> tf.Tensor:
        """Input rows ``index`` [B] -> the tower's embeddings [B, d]."""
        projected = self.tower.get_layer("projection")(self.sentence(index))
        return self.tower.get_layer("l2_normalize")(projected)


def caption_split(folder: pathlib.Path, captions: int | None) -> data.SplitTables:
    """Flickr8k train: image features (``harness``) and WordPiece ids of the first captions."""
    train, _ = harness.flickr8k_tables(str(folder))
    text = {}
    for line in (folder / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines():
        caption_id, _, caption = line.partition("\t")
        text[caption_id] = caption
    count = captions or train.num_captions
    ids = [name.decode() for name in train.caption_ids[:count]]
    missing = [name for name in ids if name not in text]
    if missing:
        raise ValueError(f"{folder / 'Flickr8k.token.txt'}: no caption for {len(missing)} "
                         f"caption ids, first {missing[0]!r}")
    tokens = wordpiece.wordpiece_features(tf.constant([text[name] for name in ids]),
                                          max_tokens=TransformConfig.wordpiece_max_tokens)
    return dataclasses.replace(train, text={k: v.numpy() for k, v in tokens.items()},
                               text_image_index=train.text_image_index[:count],
                               caption_ids=train.caption_ids[:count])


@dataclasses.dataclass
class Setup:
    """The towers, the split, the cached bottom and the variants' embedders of captions."""

    config: TrainerConfig
    split: data.SplitTables
    image_tower: object
    text_tower: object
    prefixes: dict[str, tf.Module]
    trainers: dict[str, training.PairTrainer] = dataclasses.field(default_factory=dict)

    @property
    def num_captions(self) -> int:
        """Train captions in the split."""
        return self.split.num_captions

    @property
    def lengths(self) -> np.ndarray:
        """Tokens of each caption [N]."""
        return np.sum(self.split.text[wordpiece.WORDPIECE_MASK_XF] != 0, axis=1)

    def trainer(self, name: str) -> training.PairTrainer:
        """The ``PairTrainer`` whose rows embed captions through ``prefixes[name]``."""
        if name not in self.trainers:
            rows = TrainingRows(self.image_tower, self.text_tower, self.split,
                                text_prefix=self.prefixes[name])
            self.trainers[name] = training.PairTrainer(
                self.config, rows, self.num_captions // self.config.batch_size)
        return self.trainers[name]

    def step(self, name: str) -> Callable[[np.ndarray], float]:
        """One optimizer step of variant ``name`` on caption rows [B]; returns its loss."""
        trainer = self.trainer(name)
        return lambda batch: float(trainer.train_step(tf.constant(batch, tf.int64))["loss"])

    def layer(self, name: str) -> Callable[[np.ndarray], float]:
        """The trained layers alone, forward and gradients, of variant ``name`` on rows [B]."""
        prefix = self.prefixes[name]
        encoder, first = self.text_tower.encoder, prefix.first_block
        variables = [v for block in encoder.blocks[first:] for v in block.trainable_variables]
        sentence = (prefix.sentence if isinstance(prefix, PaddedPrefix) else
                    lambda index: unpadded.flat_top(encoder, prefix.tokens(index), first,
                                                    prefix.policy))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def forward_backward(index: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(sentence(index) * tf.range(1.0, 385.0))
            return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, variables)])

        return lambda batch: float(forward_backward(tf.constant(batch, tf.int64)))

    def first_losses(self, batch: np.ndarray) -> dict[str, float]:
        """Each variant's loss of one step on ``batch`` from the same variable values."""
        variables = self.image_tower.variables + self.text_tower.variables
        start = [v.numpy() for v in variables]
        losses = {}
        for name in self.prefixes:
            for variable, value in zip(variables, start, strict=True):
                variable.assign(value)
            losses[name] = self.step(name)(batch)
        for variable, value in zip(variables, start, strict=True):
            variable.assign(value)
        return losses


def build_setup(folder: str | None, captions: int | None) -> Setup:
    """The default towers on ``captions`` Flickr8k train captions (None: all) and the variants."""
    split = caption_split(harness.flickr8k_dir(folder), captions)
    config = TrainerConfig()
    training.set_seeds(config.seed)
    image_tower, text_tower = towers.build_towers(config, 0, split.image_features.shape[-1])
    cache = frozen_prefix.FrozenPrefix(text_tower, split.text, config.eval_batch_size)
    flat = unpadded.FlatPrefix(cache, FLOAT32)
    prefixes = {"padded float32": PaddedPrefix(flat), "flat float32": flat,
                "flat bfloat16": unpadded.FlatPrefix(cache, BF16)}
    return Setup(config, split, image_tower, text_tower, prefixes)
