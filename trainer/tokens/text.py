"""Caption normalization and word tokenization, in TensorFlow and as an exact Python twin.

The TensorFlow version runs inside the Transform graph, and so inside the exported SavedModel:
it uses only core TF string ops (``tf.strings.lower``, ``tf.strings.regex_replace``,
``tf.strings.split``), so TF Serving needs no custom ops. The Python twin
:func:`tokenize_py` returns exactly the same tokens; ExampleGen uses it to reject captions that
are empty after normalization.

Rules, applied in this order:

1. Unicode-aware lowercasing (full case mapping: ``"Ñandú" -> "ñandú"``).
2. Apostrophe look-alikes (``’ ‘ ʼ ` ´``) become ``'``.
3. Every run of characters that is not a letter, combining mark, digit or apostrophe (Unicode
   categories L*, M*, N*) becomes one space: punctuation, hyphens, symbols, tabs, newlines and
   all other whitespace separate words and disappear.
4. An apostrophe starts a new token (``"dog's" -> "dog 's"``, ``"don't" -> "don 't"``, and the
   pre-tokenized Flickr8k form ``"dog 's"`` gives the same tokens); an apostrophe that is not
   followed by a word character is dropped (``"dogs'" -> "dogs"``).
5. Split on spaces. A caption with no word characters gives no tokens.

The two versions agree on every character assigned in Unicode 13 (Python 3.10's
``unicodedata``); RE2 inside TensorFlow may know newer letters that Python treats as unassigned.
"""

import re
import unicodedata

import tensorflow as tf

_APOSTROPHE_LIKE = "’‘ʼ`´"
_APOSTROPHE = "'"
_WORD_CATEGORIES = ("L", "M", "N")

# RE2 patterns of the TF version (rules 2-4).
_APOSTROPHE_LIKE_RE = f"[{_APOSTROPHE_LIKE}]"
_SEPARATOR_RUN_RE = r"[^\pL\pM\pN']+"
_DANGLING_APOSTROPHE_RE = "'( |$)"

_APOSTROPHE_TABLE = str.maketrans({c: _APOSTROPHE for c in _APOSTROPHE_LIKE})


def normalize(captions: tf.Tensor) -> tf.Tensor:
    """Normalizes raw captions to space-separated tokens (rules 1-4 of the module docstring).

    Args:
        captions: string tensor of any shape (typically [N]) holding UTF-8 captions.

    Returns:
        A string tensor of the same shape; its space-separated words are the tokens.

    """
    text = tf.strings.lower(captions, encoding="utf-8")
    text = tf.strings.regex_replace(text, _APOSTROPHE_LIKE_RE, _APOSTROPHE)
    text = tf.strings.regex_replace(text, _SEPARATOR_RUN_RE, " ")
    text = tf.strings.regex_replace(text, _APOSTROPHE, " " + _APOSTROPHE)
    return tf.strings.regex_replace(text, _DANGLING_APOSTROPHE_RE, " ")


def tokenize(captions: tf.Tensor) -> tf.RaggedTensor:
    """Tokenizes a batch of raw captions.

    Args:
        captions: string tensor [N] of UTF-8 captions.

    Returns:
        A string RaggedTensor [N, (T)]: the tokens of each caption (T may be 0).

    """
    return tf.strings.split(normalize(captions))


def _is_word_char(char: str) -> bool:
    """Whether ``char`` is kept inside words: a letter, mark, digit or the apostrophe."""
    return char == _APOSTROPHE or unicodedata.category(char)[0] in _WORD_CATEGORIES


def normalize_py(caption: str) -> str:
    """Pure-Python twin of :func:`normalize` for one caption.

    Args:
        caption: the raw caption text.

    Returns:
        The normalized text; its space-separated words are the tokens.

    """
    text = caption.lower().translate(_APOSTROPHE_TABLE)
    text = "".join(char if _is_word_char(char) else " " for char in text)
    text = text.replace(_APOSTROPHE, " " + _APOSTROPHE)
    return re.sub(_DANGLING_APOSTROPHE_RE, " ", text)


def tokenize_py(caption: str) -> list[str]:
    """Pure-Python twin of :func:`tokenize`: exactly the tokens the TF graph produces.

    Args:
        caption: the raw caption text.

    Returns:
        The tokens, possibly an empty list (then the caption has no word characters).

    """
    return normalize_py(caption).split()


def check_caption(caption: str, source: str) -> str:
    """Returns the caption stripped of surrounding whitespace after checking it has tokens.

    The rule that ingestion applies to the training captions and the client to query captions:
    a caption that :func:`tokenize` would turn into zero tokens is refused, with its location.

    Args:
        caption: the raw caption text.
        source: where the caption comes from (``<file>:<line>``, ``captions[3]``), for the
            message.

    Raises:
        ValueError: for an empty/whitespace-only caption or one empty after normalization.

    """
    stripped = caption.strip()
    if not stripped:
        raise ValueError(f"{source}: empty or whitespace-only caption; every caption needs text")
    if not tokenize_py(stripped):
        raise ValueError(
            f"{source}: caption {stripped!r} has no tokens after normalization "
            "(trainer.tokens.text.tokenize_py); every caption needs at least one token"
        )
    return stripped
