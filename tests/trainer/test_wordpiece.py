"""In-graph WordPiece: hand-computed cases on a tiny vocabulary, and parity with the reference
all-MiniLM-L6-v2 tokenizer (an independent pure-Python oracle built from its tokenizer.json)."""

import json
import pathlib
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from trainer.tokens import wordpiece

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "dog", "run", "##ning", "'", "s", ".",
              "cafe", "un", "##known"]  # fmt: skip


def _encode(captions, max_tokens, vocab=TINY_VOCAB):
    ids, mask = wordpiece.WordPieceEncoder(vocab, max_tokens)(tf.constant(captions))
    return ids.numpy().tolist(), mask.numpy().tolist()


def test_tiny_vocab_hand_computed_ids_and_mask():
    ids, mask = _encode(["A dog's running.", "CAFÉ unknown", "zebra", ""], max_tokens=9)
    assert ids == [
        [2, 4, 5, 8, 9, 6, 7, 10, 3],  # [CLS] a dog ' s run ##ning . [SEP]
        [2, 11, 12, 13, 3, 0, 0, 0, 0],  # lowercased, accent stripped; un ##known
        [2, 1, 3, 0, 0, 0, 0, 0, 0],  # no piece matches -> [UNK]
        [2, 3, 0, 0, 0, 0, 0, 0, 0],  # empty caption -> [CLS] [SEP]
    ]
    assert mask == [[1] * 9, [1] * 5 + [0] * 4, [1] * 3 + [0] * 6, [1] * 2 + [0] * 7]


def test_truncation_keeps_sep_last_and_accepts_column_input():
    ids, mask = wordpiece.WordPieceEncoder(TINY_VOCAB, 5)(tf.constant([["a dog a dog a"]]))
    assert ids.numpy().tolist() == [[2, 4, 5, 4, 3]]
    assert mask.numpy().tolist() == [[1, 1, 1, 1, 1]]


def test_wordpiece_features_keys_shapes_and_dtypes():
    out = wordpiece.wordpiece_features(tf.constant(["a dog", "a"]), max_tokens=7)
    assert set(out) == {wordpiece.WORDPIECE_IDS_XF, wordpiece.WORDPIECE_MASK_XF}
    for value in out.values():
        assert value.dtype == tf.int64 and value.shape == (2, 7)
    assert out[wordpiece.WORDPIECE_IDS_XF].numpy()[1].tolist() == [101, 1037, 102, 0, 0, 0, 0]


def test_max_tokens_below_three_is_rejected():
    with pytest.raises(ValueError, match="max_tokens must be >= 3"):
        wordpiece.WordPieceEncoder(TINY_VOCAB, 2)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "a"], r"vocab.txt:6: .*'a' repeats .* line 5"),
        (["[PAD]", "[UNK]", "", "[CLS]", "[SEP]"], r"vocab.txt:3: .* is empty"),
        (["[PAD]", "[UNK]", "[CLS]"], r"special tokens \['\[SEP\]'\] are missing"),
        (["[UNK]", "[PAD]", "[CLS]", "[SEP]"], r"vocab.txt:2: \[PAD\] must be on line 1"),
    ],
)
def test_load_vocab_rejects_bad_files(tmp_path, lines, message):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        wordpiece.load_vocab(path)


# --- The oracle: HF BertNormalizer + BertPreTokenizer + WordPiece, from tokenizer.json ---


def _is_punctuation(char):
    cp = ord(char)
    ascii_punct = 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
    return ascii_punct or unicodedata.category(char).startswith("P")


def _is_cjk(char):
    cp = ord(char)
    ranges = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F)]
    ranges += [(0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
    return any(lo <= cp <= hi for lo, hi in ranges)


def _normalize(text):
    out = []
    for char in text:
        if ord(char) in (0, 0xFFFD) or (
            unicodedata.category(char) in ("Cc", "Cf") and char not in "\t\n\r"
        ):
            continue
        is_space = char in " \t\n\r" or unicodedata.category(char) == "Zs"
        out.append(" " if is_space else f" {char} " if _is_cjk(char) else char)
    text = unicodedata.normalize("NFD", "".join(out).lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def _pre_tokenize(text):
    words = []
    for chunk in text.split():
        word = ""
        for char in chunk:
            if _is_punctuation(char):
                words += [word, char] if word else [char]
                word = ""
            else:
                word += char
        words += [word] if word else []
    return words


def _wordpiece(word, model):
    vocab, unk = model["vocab"], [model["vocab"][model["unk_token"]]]
    if len(word) > model["max_input_chars_per_word"]:
        return unk
    ids, start = [], 0
    while start < len(word):
        prefix = model["continuing_subword_prefix"] if start else ""
        end = len(word)
        while end > start and prefix + word[start:end] not in vocab:
            end -= 1
        if end == start:
            return unk
        ids.append(vocab[prefix + word[start:end]])
        start = end
    return ids


class ReferenceTokenizer:
    """all-MiniLM-L6-v2's tokenizer, read from its tokenizer.json (the test oracle)."""

    def __init__(self, path: pathlib.Path):
        spec = json.loads(path.read_text(encoding="utf-8"))
        assert spec["normalizer"]["type"] == "BertNormalizer" and spec["normalizer"]["lowercase"]
        assert spec["pre_tokenizer"]["type"] == "BertPreTokenizer"
        assert spec["model"]["type"] == "WordPiece"
        self.model = spec["model"]
        special = spec["post_processor"]["special_tokens"]
        self.cls, self.sep = special["[CLS]"]["ids"], special["[SEP]"]["ids"]

    def __call__(self, text):
        pieces = [i for w in _pre_tokenize(_normalize(text)) for i in _wordpiece(w, self.model)]
        return self.cls + pieces + self.sep


@pytest.fixture(scope="module")
def reference():
    return ReferenceTokenizer(wordpiece.default_vocab_path().parent / "tokenizer.json")


def test_oracle_matches_known_bert_uncased_ids(reference):
    # bert-base-uncased ids: hello 7592, "," 1010, world 2088, "!" 999, "'" 1005, s 1055.
    assert reference("Hello, WORLD!") == [101, 7592, 1010, 2088, 999, 102]
    assert reference("world's") == [101, 2088, 1005, 1055, 102]


def parity_captions(flickr8k_dir: pathlib.Path, count: int = 20) -> dict[str, str]:
    """20 real captions: 10 evenly spaced, 10 with punctuation beyond the final period."""
    lines = (flickr8k_dir / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines()
    pairs = [line.split("\t") for line in lines]
    spaced = pairs[:: len(pairs) // (count // 2)][: count // 2]
    tricky = [p for p in pairs if any(c in p[1].rstrip(" .") for c in "'-,\"&.")]
    return dict(spaced + tricky[: count - len(spaced)])


def test_in_graph_ids_equal_reference_tokenizer_on_20_real_captions(flickr8k_dir, reference):
    captions = parity_captions(flickr8k_dir)
    assert len(captions) == 20
    max_tokens = wordpiece.DEFAULT_MAX_TOKENS
    out = wordpiece.wordpiece_features(tf.constant(list(captions.values())), max_tokens)
    ids = out[wordpiece.WORDPIECE_IDS_XF].numpy()
    mask = out[wordpiece.WORDPIECE_MASK_XF].numpy()
    for row, (caption_id, caption) in enumerate(captions.items()):
        expected = reference(caption)
        assert len(expected) <= max_tokens, caption_id
        assert ids[row, : len(expected)].tolist() == expected, (caption_id, caption)
        assert not ids[row, len(expected) :].any()
        np.testing.assert_array_equal(mask[row], ids[row] != 0)


def test_in_graph_ids_equal_reference_tokenizer_on_every_flickr8k_caption(flickr8k_dir, reference):
    lines = (flickr8k_dir / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines()
    captions = [line.split("\t")[1] for line in lines]
    expected = [reference(caption) for caption in captions]
    assert max(map(len, expected)) <= wordpiece.DEFAULT_MAX_TOKENS  # nothing truncated
    ids = wordpiece.wordpiece_features(tf.constant(captions))[wordpiece.WORDPIECE_IDS_XF].numpy()
    mismatched = [
        lines[i]
        for i, e in enumerate(expected)
        if ids[i, : len(e)].tolist() != e or ids[i, len(e) :].any()
    ]
    assert mismatched == []
