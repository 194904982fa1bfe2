"""Plain records that flow through the caption ExampleGen before they become tf.Examples."""

from __future__ import annotations

import dataclasses


class IngestError(ValueError):
    """Bad input data: the message names the file, the line or record, and the rule broken."""


@dataclasses.dataclass(frozen=True)
class CaptionRecord:
    """One caption as read from a dataset file.

    Attributes:
      image_id: the output image identifier (the image file name), joined to the image features.
      caption_id: the output caption identifier (e.g. ``IMAGE.jpg#2``), joined to caption
        features.
      caption: the raw caption text (decoded UTF-8, surrounding whitespace stripped).
      split: the output split (``train``/``eval``/``test``) when the file itself says it, or ""
        when split lists assign it.
      list_key: the name split lists use for this image (the file name; a COCO image id).
      source: where the record came from, ``<file>:<line>`` or ``<file>: <record path>``.

    """

    image_id: str
    caption_id: str
    caption: str
    split: str
    list_key: str
    source: str


@dataclasses.dataclass(frozen=True)
class ListEntry:
    """One line of a split list: the image ``key`` belongs to output split ``split``."""

    key: str
    split: str
    source: str
