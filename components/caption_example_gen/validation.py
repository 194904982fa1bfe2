"""Record-level rules shared by every reader (caption text, UTF-8)."""

from __future__ import annotations

from components.caption_example_gen.records import IngestError

UTF8_BOM = b"\xef\xbb\xbf"
# The longest caption ingestion keeps, in characters (after stripping surrounding whitespace). A
# longer one is a counted skip (``skipped_captions_over_max_length``), not an error: a pasted
# paragraph among many thousand captions should not stop a scheduled retraining. 1,000 is five
# times the longest Flickr8k caption (199) and holds at most 500 words, what ROUGE-L reads
# (``serving.rouge.MAX_TOKENS``).
MAX_CAPTION_CHARS = 1000


def decode_utf8(raw: bytes, source: str) -> str:
    """Decodes one line or field as UTF-8.

    Args:
      raw: the undecoded bytes.
      source: ``<file>:<line>`` for the error message.

    Raises:
      IngestError: when ``raw`` is not valid UTF-8 (names the byte offset).

    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IngestError(
            f"{source}: invalid UTF-8 at byte {err.start} ({raw[err.start:err.end]!r}); "
            "captions must be UTF-8"
        ) from err


def check_caption(caption: str, source: str) -> str:
    """Returns the caption stripped of surrounding whitespace after checking it has tokens.

    The rule is ``trainer.tokens.text.check_caption``, shared with the serving client.

    Raises:
      IngestError: for an empty/whitespace-only caption or one empty after normalization.

    """
    from trainer.tokens import text  # lazy: keeps the reader import light

    try:
        return text.check_caption(caption, source)
    except ValueError as err:
        raise IngestError(str(err)) from err


def read_file_bytes(path: str, role: str) -> bytes:
    """Reads a whole input file (local path or any ``tf.io.gfile`` URI).

    Args:
      path: the file.
      role: what the file is for (e.g. "caption file"), for the error message.

    Raises:
      IngestError: when the file does not exist.

    """
    import tensorflow as tf  # lazy: only Beam workers and the executor read files

    if not tf.io.gfile.exists(path):
        raise IngestError(f"{path}: {role} not found")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def read_text_file(path: str, role: str) -> bytes:
    """Reads a whole UTF-8 text input (see ``read_file_bytes``) without a leading byte-order mark.

    Windows editors often save UTF-8 with a BOM (``EF BB BF``); kept, it would become part of
    the first caption id or image name, which then matches nothing and is skipped as unlisted.

    Raises:
      IngestError: when the file does not exist.

    """
    data = read_file_bytes(path, role)
    return data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data


def split_lines(data: bytes) -> list[bytes]:
    r"""Splits file contents into lines without their ``\n`` / ``\r\n`` endings."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]
