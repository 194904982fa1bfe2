"""Issue 10: ``embed_text`` speed of the ``minilm`` text tower vs the GRU tower, side by side.

Both run raw captions end to end inside one ``tf.function``, as the served ``embed_text``
signature does: ``minilm`` = in-graph WordPiece + the 6-layer MiniLM encoder + projection;
``gru`` = the Transform word tokenizer (``trainer.text.tokenize``) + a vocabulary lookup + the
Trainer's bidirectional-GRU ``TokenTextTower`` (``TrainerConfig`` default sizes). Figures: latency
p50/p99 for one caption and throughput (captions/s) at batch 256, and the minilm/gru ratios.

Run: ``python -m benchmarks.bench_minilm [--quick] [--data ../shared/data/flickr8k]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import argparse  # noqa: E402
import pathlib  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import features, minilm, text, wordpiece  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402
from trainer.towers import TokenTextTower  # noqa: E402

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
BATCH = 256
GRU_MAX_TOKENS = 32

EmbedText = Callable[[tf.Tensor], tf.Tensor]


def load_captions(data: pathlib.Path) -> list[str]:
    """Flickr8k captions when present, else generated ones (reported as synthetic)."""
    path = data / "Flickr8k.token.txt"
    if path.is_file():
        print(f"captions: {path}")
        return [line.split("\t", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()]
    print(f"captions: synthetic ({path} not found)")
    rng = np.random.default_rng(0)
    words = ["a", "dog", "man", "woman", "runs", "jumps", "on", "the", "grass", "beach", "red"]
    return [" ".join(rng.choice(words, size=rng.integers(5, 20))) + " ." for _ in range(2000)]


def minilm_embed_text(d: int) -> EmbedText:
    """Raw captions [N] -> [N, d] through WordPiece + the MiniLM tower."""
    tokenizer = wordpiece.WordPieceEncoder(wordpiece.load_vocab())
    tower = minilm.build_minilm_text_tower(d)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed(captions: tf.Tensor) -> tf.Tensor:
        ids, mask = tokenizer(captions)
        return tower({wordpiece.WORDPIECE_IDS_XF: ids, wordpiece.WORDPIECE_MASK_XF: mask})

    return embed


def gru_embed_text(config: TrainerConfig, captions: list[str]) -> EmbedText:
    """Raw captions [N] -> [N, d] through the word tokenizer, a vocabulary and the GRU tower."""
    vocab = sorted({t for c in captions for t in text.tokenize_py(c)})
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(vocab, tf.range(1, len(vocab) + 1, dtype=tf.int64)),
        default_value=len(vocab) + 1,  # one OOV id; 0 is padding
    )
    tower = TokenTextTower(
        "gru", len(vocab) + 2, config.embedding_dim, config.word_dim, config.gru_units
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed(captions: tf.Tensor) -> tf.Tensor:
        ids = tf.ragged.map_flat_values(table.lookup, text.tokenize(captions))
        tokens = ids.to_tensor(0, shape=[None, GRU_MAX_TOKENS])
        lengths = tf.minimum(ids.row_lengths(), GRU_MAX_TOKENS)
        return tower({features.CAPTION_TOKENS_XF: tokens, features.CAPTION_LENGTH_XF: lengths})

    return embed


def latency_ms(embed: EmbedText, captions: list[str], repeats: int) -> tuple[float, float]:
    """p50 and p99 milliseconds of ``embed`` on one caption at a time."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        embed(tf.constant([captions[i % len(captions)]])).numpy()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def throughput(embed: EmbedText, captions: list[str], repeats: int) -> float:
    """Captions per second of ``embed`` at batch ``BATCH`` (best of ``repeats`` batches)."""
    best = float("inf")
    for i in range(repeats):
        batch = tf.constant([captions[(i * BATCH + j) % len(captions)] for j in range(BATCH)])
        start = time.perf_counter()
        embed(batch).numpy()
        best = min(best, time.perf_counter() - start)
    return BATCH / best


def main(argv: list[str] | None = None) -> None:
    """Measures both towers in one run and prints the figures and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    latency_repeats, batch_repeats = (10, 1) if args.quick else (300, 8)
    captions = load_captions(args.data)
    config = TrainerConfig()
    towers = {
        "minilm": minilm_embed_text(config.embedding_dim),
        "gru": gru_embed_text(config, captions),
    }
    results = {}
    for name, embed in towers.items():
        embed(tf.constant(captions[:BATCH]))  # trace + warm up both shapes
        embed(tf.constant(captions[:1]))
        p50, p99 = latency_ms(embed, captions, latency_repeats)
        results[name] = (p50, p99, throughput(embed, captions, batch_repeats))
    print(f"embed_text, d={config.embedding_dim}, CPU threads: "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")  # fmt: skip
    print(f"{'tower':8} {'p50 ms (1 caption)':>20} {'p99 ms':>10} {'captions/s @256':>16}")
    for name, (p50, p99, rate) in results.items():
        print(f"{name:8} {p50:20.2f} {p99:10.2f} {rate:16.1f}")
    (m50, m99, mrate), (g50, g99, grate) = results["minilm"], results["gru"]
    print(f"ratio minilm/gru: p50 x{m50 / g50:.2f}, p99 x{m99 / g99:.2f}, "
          f"throughput x{mrate / grate:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
