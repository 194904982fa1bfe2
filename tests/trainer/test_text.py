import unicodedata

import pytest
import tensorflow as tf

from trainer.tokens import text

TRICKY = [
    ("A dog runs.", ["a", "dog", "runs"]),
    ("A dog's ball", ["a", "dog", "'s", "ball"]),
    ("A dog 's ball", ["a", "dog", "'s", "ball"]),
    ("Don't stop!", ["don", "'t", "stop"]),
    ("Dogs' toys", ["dogs", "toys"]),
    ("the dog’s bone", ["the", "dog", "'s", "bone"]),
    ("'quoted' word", ["'quoted", "word"]),
    ("a tri-colored dog, a pillow-fight", ["a", "tri", "colored", "dog", "a", "pillow", "fight"]),
    ("3 dogs and 10 cats; 2.5 kids", ["3", "dogs", "and", "10", "cats", "2", "5", "kids"]),
    ("The 1st of 5-year-olds", ["the", "1st", "of", "5", "year", "olds"]),
    ("Café CRÈME à Ñandú", ["café", "crème", "à", "ñandú"]),
    ("cafe\u0301 bar", ["cafe\u0301", "bar"]),
    ("ÜBER STRAßE", ["über", "straße"]),
    (
        "  many   spaces\tand\ttabs\nnewline\u00a0nbsp  ",
        ["many", "spaces", "and", "tabs", "newline", "nbsp"],
    ),
    ('He said "hi" (loudly) & left #1 :)', ["he", "said", "hi", "loudly", "left", "1"]),
    ("snow_board+ski=fun", ["snow", "board", "ski", "fun"]),
    ("Δέλτα КОШКА 東京", ["δέλτα", "кошка", "東京"]),
    ("", []),
    ("   \t\n ", []),
    ("... ,;!? - ' '' \"", []),
]


def _tf_tokens(captions: list[str]) -> list[list[str]]:
    ragged = text.tokenize(tf.constant(captions))
    return [[token.decode("utf-8") for token in row] for row in ragged.to_list()]


@pytest.mark.parametrize(("caption", "expected"), TRICKY)
def test_tokenize_py_tricky_captions(caption, expected):
    assert text.tokenize_py(caption) == expected


def test_tf_tokenize_matches_expectations_in_one_batch():
    captions = [caption for caption, _ in TRICKY]
    assert _tf_tokens(captions) == [expected for _, expected in TRICKY]


def test_tokenize_returns_ragged_rows_per_caption():
    ragged = text.tokenize(tf.constant(["a b", "", "c"]))
    assert ragged.shape[0] == 3
    assert ragged.row_lengths().numpy().tolist() == [2, 0, 1]


def test_normalize_is_the_space_joined_form():
    assert text.normalize_py("A dog's ball.").split() == ["a", "dog", "'s", "ball"]
    normalized = text.normalize(tf.constant(["A dog's ball."])).numpy()[0].decode()
    assert normalized.split() == ["a", "dog", "'s", "ball"]


def test_twins_agree_on_every_assigned_unicode_character():
    chars = [
        chr(code)
        for code in range(0x20, 0x30000)
        if not 0xD800 <= code < 0xE000 and unicodedata.category(chr(code)) != "Cn"
    ]
    captions = [f"x{char}Y {char}'{char}" for char in chars]
    tf_tokens = _tf_tokens(captions)
    mismatches = [
        (hex(ord(char)), got, text.tokenize_py(caption))
        for char, caption, got in zip(chars, captions, tf_tokens, strict=True)
        if got != text.tokenize_py(caption)
    ]
    assert mismatches == []


def test_twins_agree_on_every_flickr8k_caption(flickr8k_dir):
    lines = (flickr8k_dir / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines()
    captions = [line.split("\t", 1)[1] for line in lines if line.strip()]
    assert len(captions) == 35000
    tf_tokens = _tf_tokens(captions)
    mismatches = [
        (caption, got)
        for caption, got in zip(captions, tf_tokens, strict=True)
        if got != text.tokenize_py(caption)
    ]
    assert mismatches == []
    assert all(tokens for tokens in tf_tokens), "every real caption has at least one token"


def test_check_caption_strips_and_refuses_a_wordless_caption_by_source():
    assert text.check_caption("  a dog.\n", "f.txt:3") == "a dog."
    with pytest.raises(ValueError, match=r"^f\.txt:4: empty or whitespace-only caption"):
        text.check_caption(" \t", "f.txt:4")
    with pytest.raises(ValueError, match=r"^captions\[1\]: caption '\.\.\. !' has no tokens"):
        text.check_caption("... !", "captions[1]")
