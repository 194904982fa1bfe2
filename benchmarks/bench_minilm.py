"""``embed_text`` speed of the ``minilm`` text tower vs the GRU tower, side by side.

Both run raw captions end to end inside one ``tf.function``, as the served ``embed_text``
signature does: ``minilm`` = in-graph WordPiece + the 6-layer MiniLM encoder + projection;
``gru`` = the Transform word tokenizer (``trainer.tokens.text.tokenize``) + a vocabulary lookup +
the
Trainer's bidirectional-GRU ``TokenTextTower`` (``TrainerConfig`` default sizes). Figures: latency
p50/p99 for one caption and throughput (captions/s) at batch 256, and the minilm/gru ratios.

Then, unless ``--quick``, the raw-text check on the Flickr8k dev split: the in-graph encoder's
embeddings of the 5,000 dev captions vs the precomputed ``minilm_l6_v2.npy`` rows (cosine), and
the rsum of one closed-form ridge model (train image features -> MiniLM space) evaluated with
either set of dev caption embeddings (features mode vs raw text in). The closing summary holds
both parts as ``label: value`` lines.

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

from trainer import features, metrics
from trainer.config import TrainerConfig  # noqa: E402
from trainer.model import minilm
from trainer.model.towers import TokenTextTower  # noqa: E402
from trainer.tokens import text, wordpiece

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
BATCH = 256
GRU_MAX_TOKENS = 32
RIDGE_LAMBDA = 100.0

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


def _lines(path: pathlib.Path) -> list[str]:
    return path.read_text(encoding="utf-8").split()


def ridge_image_map(data: pathlib.Path, captions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge from z-scored train image features to mean train caption features.

    Returns:
        ``(W [1280, 384], dev image embeddings [1000, 384])`` with L2-normalized rows.

    """
    image = np.load(data / "features" / "mobilenet_v2.npy").astype(np.float32)
    row = {name: i for i, name in enumerate(_lines(data / "features" / "mobilenet_v2.names.txt"))}
    caption_row = {c: i for i, c in enumerate(_lines(data / "features" / "minilm_l6_v2.ids.txt"))}
    train = [row[n] for n in _lines(data / "Flickr_8k.trainImages.txt")]
    dev = [row[n] for n in _lines(data / "Flickr_8k.devImages.txt")]
    mean, std = image[train].mean(0), image[train].std(0) + 1e-6
    x = (image[train] - mean) / std
    names = _lines(data / "Flickr_8k.trainImages.txt")
    target = np.stack(
        [captions[[caption_row[f"{n}#{k}"] for k in range(5)]].mean(0) for n in names]
    )
    w = np.linalg.solve(x.T @ x + RIDGE_LAMBDA * np.eye(x.shape[1]), x.T @ target)
    dev_image = (image[dev] - mean) / std @ w
    return w, dev_image / np.linalg.norm(dev_image, axis=1, keepdims=True)


def quality(data: pathlib.Path, captions_by_id: dict[str, str]) -> dict[str, str]:
    """Dev-split parity and ridge rsum: precomputed features vs the in-graph encoder.

    Returns:
        The summary figures, label -> value.

    """
    precomputed = np.load(data / "features" / "minilm_l6_v2.npy").astype(np.float32)
    caption_row = {c: i for i, c in enumerate(_lines(data / "features" / "minilm_l6_v2.ids.txt"))}
    dev_names = _lines(data / "Flickr_8k.devImages.txt")
    dev_ids = [f"{n}#{k}" for n in dev_names for k in range(5)]
    tokenizer = wordpiece.WordPieceEncoder(wordpiece.load_vocab())
    encoder = minilm.load_pretrained_encoder()
    ordered = sorted(dev_ids, key=lambda c: len(captions_by_id[c]))  # similar lengths per batch
    encoded = {}
    for start in range(0, len(ordered), BATCH):
        chunk = ordered[start : start + BATCH]
        ids, mask = tokenizer(tf.constant([captions_by_id[c] for c in chunk]))
        encoded.update(zip(chunk, encoder(ids, mask).numpy(), strict=True))
    ours = np.stack([encoded[c] for c in dev_ids])
    theirs = precomputed[[caption_row[c] for c in dev_ids]]
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    cosine = np.sum(ours * theirs, axis=1)
    figures = {f"dev captions ({len(dev_ids)}), cosine(in-graph, precomputed) min / mean":
               f"{cosine.min():.5f} / {cosine.mean():.6f}"}
    _, dev_image = ridge_image_map(data, precomputed)
    text_image_ids = [c.rsplit("#", 1)[0] for c in dev_ids]
    for name, text_embeddings in (("features mode (precomputed npy)", theirs),
                                  ("raw text through in-graph WordPiece + MiniLM", ours)):
        scores = metrics.retrieval_metrics(dev_image, dev_names, text_embeddings, text_image_ids)
        figures[f"ridge model, dev rsum / i2t R@1 / t2i R@1, {name}"] = (
            f"{scores['rsum']:.2f} / {scores['i2t_r1']:.2f} / {scores['t2i_r1']:.2f}")
    for label, value in figures.items():
        print(f"{label}: {value}", flush=True)
    return figures


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
        embed(tf.constant(captions[:8]))  # trace once ([None] signature) and warm up
        p50, p99 = latency_ms(embed, captions, latency_repeats)
        results[name] = (p50, p99, throughput(embed, captions, batch_repeats))
    print(f"embed_text, d={config.embedding_dim}, CPU threads: "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")  # fmt: skip
    print(f"{'tower':8} {'p50 ms (1 caption)':>20} {'p99 ms':>10} {'captions/s @256':>16}")
    for name, (p50, p99, rate) in results.items():
        print(f"{name:8} {p50:20.2f} {p99:10.2f} {rate:16.1f}")
    (m50, m99, mrate), (g50, g99, grate) = results["minilm"], results["gru"]
    figures = {f"{name} embed_text p50 / p99 ms (1 caption)": f"{p50:.2f} / {p99:.2f}"
               for name, (p50, p99, _) in results.items()}
    figures.update({f"{name} embed_text captions/s @{BATCH}": f"{rate:.1f}"
                    for name, (_, _, rate) in results.items()})
    figures["ratio minilm/gru"] = (f"p50 x{m50 / g50:.2f}, p99 x{m99 / g99:.2f}, "
                                   f"throughput x{mrate / grate:.2f}")
    if not args.quick:
        lines = (args.data / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines()
        figures.update(quality(args.data, dict(line.split("\t", 1) for line in lines)))
    print(f"== summary: bench_minilm (embed_text of the minilm and gru towers, d="
          f"{config.embedding_dim}; MiniLM parity on the Flickr8k dev split) ==")
    for label, value in figures.items():
        print(f"{label}: {value}")


if __name__ == "__main__":
    main()
