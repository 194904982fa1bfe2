"""Global-mining step time and peak memory vs bank size (synthetic embeddings).

For banks of 10k, 100k and 1M captions (5 per image, so N/5 images, d = 1024 by default) one
mining step of B queries (``EmbeddingBank.mine``: B captions against every image and B images
against every caption) is timed, and the resident memory it adds on top of the bank is sampled.
The chunked path holds at most two chunks in flight, each ``5 * B * chunk_size`` bytes of scores
and mask plus the chunk's rows and the matmul's packed copy of them (``8 * chunk_size * d``),
independent of N (``trainer.mining``); the unchunked path (one chunk = the whole bank) is
measured next to it where its [B, N] score matrix fits, to show the difference.
``python -m benchmarks.bench_mining_scaling [--quick]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # legacy Keras 2: set before TensorFlow loads

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import harness  # noqa: E402
from trainer import mining
from trainer.negatives import embedding_bank

MIB = 2.0**20
CAPTIONS_PER_IMAGE = 5
UNCHUNKED_LIMIT_BYTES = 1 * harness.GIB  # skip the unchunked path beyond this score matrix
MEMORY_HEADROOM = 3  # bank + a full copy of it + slack must fit in available memory


def _fill(variable: tf.Variable, seed: int, rows_per_write: int = 65536) -> None:
    """Fills ``variable`` [N, d] with random unit rows, a bounded slab at a time."""
    n, dim = variable.shape
    for start in range(0, n, rows_per_write):
        rows = min(rows_per_write, n - start)
        slab = tf.random.stateless_normal([rows, dim], seed=[seed, start])
        variable[start:start + rows].assign(tf.math.l2_normalize(slab, axis=1))


def synthetic_bank(num_captions: int, dim: int, chunk_size: int) -> embedding_bank.EmbeddingBank:
    """A bank of ``num_captions`` captions, 5 per image, filled with random unit embeddings."""
    text_image_index = np.arange(num_captions, dtype=np.int64) // CAPTIONS_PER_IMAGE
    bank = embedding_bank.EmbeddingBank(text_image_index, num_captions // CAPTIONS_PER_IMAGE, dim,
                                chunk_size)
    _fill(bank.image, seed=1)
    _fill(bank.text, seed=2)
    return bank


def measure(bank: embedding_bank.EmbeddingBank, batch: int, repeats: int) -> dict[str, float]:
    """Median seconds of one mining step and the peak tensor memory it adds above the bank."""
    rng = np.random.default_rng(0)
    query_index = tf.constant(rng.choice(int(bank.image.shape[0]), batch), tf.int64)
    query_image = tf.gather(bank.image, query_index)
    query_text = tf.gather(bank.text, query_index * CAPTIONS_PER_IMAGE)
    mine = lambda: bank.mine(query_image, query_text, query_index)[1].numpy()  # noqa: E731
    extra = harness.allocator_peak_extra(mine)  # the first call also traces the graph
    seconds = harness.median_seconds(mine, repeats, warmup=0)
    return {"seconds": seconds, "peak_extra_mib": extra / MIB}


def _row(num_captions: int, dim: int, batch: int, chunk: int, repeats: int) -> dict | None:
    """Figures for one bank size, or None when the machine lacks the memory to hold it."""
    bank_bytes = (num_captions + num_captions // CAPTIONS_PER_IMAGE) * dim * 4
    available = psutil.virtual_memory().available
    if MEMORY_HEADROOM * bank_bytes > available:
        needed = MEMORY_HEADROOM * bank_bytes / MIB
        print(f"{num_captions:>9,} captions: skipped, needs ~{needed:,.0f} MiB, "
              f"{available / MIB:,.0f} MiB available", flush=True)
        return None
    bank = synthetic_bank(num_captions, dim, chunk)
    row = {"captions": num_captions, "images": num_captions // CAPTIONS_PER_IMAGE,
           "bank_mib": bank_bytes / MIB, "chunked": measure(bank, batch, repeats)}
    score_bytes = 4 * batch * num_captions
    if score_bytes <= UNCHUNKED_LIMIT_BYTES:
        bank.chunk_size = num_captions
        row["unchunked"] = measure(bank, batch, repeats)
    flop = 2 * batch * dim * (row["images"] + num_captions)
    row["gflops"] = flop / row["chunked"]["seconds"] / 1e9
    return row


def _print_row(row: dict) -> None:
    chunked = row["chunked"]
    unchunked = row.get("unchunked")
    other = (f"unchunked {unchunked['seconds']:.3f} s, +{unchunked['peak_extra_mib']:.0f} MiB"
             if unchunked else "unchunked skipped ([B, N] scores > 1 GiB)")
    print(f"{row['captions']:>9,} captions + {row['images']:>7,} images (bank "
          f"{row['bank_mib']:,.0f} MiB): chunked {chunked['seconds']:.3f} s/step "
          f"({row['gflops']:.0f} GFLOP/s), +{chunked['peak_extra_mib']:.0f} MiB peak | {other}",
          flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only (< ~1 min)")
    parser.add_argument("--sizes", type=int, nargs="+", help="bank sizes in captions")
    parser.add_argument("--dim", type=int, default=1024, help="embedding size d")
    parser.add_argument("--batch", type=int, default=128, help="queries per step B")
    parser.add_argument("--chunk", type=int, default=mining.DEFAULT_CHUNK_SIZE,
                        help="bank rows per matmul")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parse(argv)
    bound = 2 * args.chunk * (5 * args.batch + 8 * args.dim) / MIB
    print(f"mining step vs bank size: B={args.batch}, d={args.dim}, chunk={args.chunk} "
          f"(chunked working set bound 2*chunk*(5*B + 8*d) = {bound:.0f} MiB)", flush=True)
    rows = []
    for size in args.sizes:
        row = _row(size, args.dim, args.batch, args.chunk, repeats=2 if args.quick else 3)
        if row is not None:
            rows.append(row)
            _print_row(row)
    print("== summary: bench_mining_scaling ==")
    print(harness.machine_line())
    print(f"B={args.batch}, d={args.dim}, chunk={args.chunk}: working-set bound {bound:.0f} MiB; "
          f"{len(args.sizes) - len(rows)} size(s) skipped for memory")
    for row in rows:
        extra = row["chunked"]["peak_extra_mib"]
        print(f"{row['captions']:>9,} captions: {row['chunked']['seconds']:.3f} s/step, peak "
              f"extra {extra:,.0f} MiB = {extra / row['bank_mib']:.2f} x bank "
              f"({row['bank_mib']:,.0f} MiB)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    return rows


if __name__ == "__main__":
    main()
