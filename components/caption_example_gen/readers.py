"""Readers, one per caption-file format; each yields ``CaptionRecord``s with their source.

Formats:
  * ``flickr``: Flickr8k/Flickr30k token files, ``IMAGE.jpg#N<TAB>caption`` per line; the split
    comes from split lists (one image name per line).
  * ``karpathy``: Karpathy split JSON (``dataset_flickr8k.json``, ``dataset_coco.json``, ...);
    the split is each image's ``split`` field.
  * ``coco``: COCO captions JSON (``images`` + ``annotations``); the split is the file's split or
    comes from lists of image ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from components.caption_example_gen.records import CaptionRecord, IngestError, ListEntry
from components.caption_example_gen.validation import (
    check_caption,
    decode_utf8,
    read_text_file,
    split_lines,
)

FORMATS = ("flickr", "karpathy", "coco")
KARPATHY_SPLITS = ("train", "val", "test", "restval")
# Marks a record that a split policy skips (counted in the ingest report, never written).
SKIP_SPLIT = "skip"

_FLICKR_ID = re.compile(r"^(?P<image>[^#\t]+)#(?P<n>\d+)$")


def read_flickr_tokens(path: str) -> Iterator[CaptionRecord]:
    """Reads a Flickr token file.

    Raises:
      IngestError: naming ``path:line`` for invalid UTF-8, a line without a tab, an id that is not
        ``IMAGE#N``, or an empty caption.

    """
    data = read_text_file(path, "caption file")
    for number, raw in enumerate(split_lines(data), start=1):
        source = f"{path}:{number}"
        line = decode_utf8(raw, source)
        caption_id, tab, caption = line.partition("\t")
        if not tab:
            raise IngestError(
                f"{source}: malformed line {line[:80]!r}; expected IMAGE#N<TAB>caption"
            )
        match = _FLICKR_ID.match(caption_id.strip())
        if match is None:
            raise IngestError(
                f"{source}: malformed caption id {caption_id[:80]!r}; expected IMAGE#N (N a number)"
            )
        image = match.group("image")
        yield CaptionRecord(
            image_id=image,
            caption_id=caption_id.strip(),
            caption=check_caption(caption, source),
            split="",
            list_key=image,
            source=source,
        )


def read_split_list(path: str, split: str) -> Iterator[ListEntry]:
    """Reads a split list (one image name or id per line; blank lines name nothing).

    Raises:
      IngestError: for a missing file or invalid UTF-8 (naming ``path:line``).

    """
    data = read_text_file(path, f"split list for '{split}'")
    for number, raw in enumerate(split_lines(data), start=1):
        source = f"{path}:{number}"
        key = decode_utf8(raw, source).strip()
        if key:
            yield ListEntry(key=key, split=split, source=source)


def _load_json(path: str) -> Any:
    data = read_text_file(path, "caption JSON")
    line = data.count(b"\n", 0, _first_bad_utf8(data)) + 1 if _first_bad_utf8(data) >= 0 else 0
    text = decode_utf8(data, f"{path}:{line}") if line else data.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise IngestError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from err


def _first_bad_utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start
    return -1


def _field(record: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    if not isinstance(record, Mapping) or key not in record:
        raise IngestError(f"{source}: missing field '{key}'")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise IngestError(f"{source}: field '{key}' must be {kind.__name__}, got {value!r:.80}")
    return value


def read_karpathy(path: str, split_map: Mapping[str, str]) -> Iterator[CaptionRecord]:
    """Reads a Karpathy split JSON; caption ids are ``<filename>#<index in sentences>``.

    Args:
      path: the JSON file.
      split_map: Karpathy split (train/val/test/restval) -> output split or ``SKIP_SPLIT``.

    Raises:
      IngestError: naming ``path: images[i]...`` for missing fields, an unknown split name, or an
        empty caption.

    """
    images = _field(_load_json(path), "images", list, path)
    for i, image in enumerate(images):
        where = f"{path}: images[{i}]"
        filename = _field(image, "filename", str, where)
        split = _field(image, "split", str, where)
        if split not in split_map:
            raise IngestError(
                f"{where}: unknown split name {split!r}; expected one of {sorted(split_map)}"
            )
        for j, sentence in enumerate(_field(image, "sentences", list, where)):
            source = f"{where}.sentences[{j}]"
            yield CaptionRecord(
                image_id=filename,
                caption_id=f"{filename}#{j}",
                caption=check_caption(_field(sentence, "raw", str, source), source),
                split=split_map[split],
                list_key=filename,
                source=source,
            )


def _coco_images(images: list, path: str) -> dict[int, str]:
    by_id: dict[int, str] = {}
    for i, image in enumerate(images):
        where = f"{path}: images[{i}]"
        image_id = _field(image, "id", int, where)
        if image_id in by_id:
            raise IngestError(f"{where}: duplicate image id {image_id}; image ids must be unique")
        by_id[image_id] = _field(image, "file_name", str, where)
    return by_id


def read_coco(path: str, split: str) -> Iterator[CaptionRecord]:
    """Reads a COCO captions JSON; caption ids are the annotation ids (as strings).

    Args:
      path: the JSON file.
      split: the output split of every caption in the file, or "" when lists of image ids assign
        splits (``list_key`` is then the COCO image id).

    Raises:
      IngestError: naming ``path: annotations[i]`` for missing fields, an annotation whose image
        is not in ``images``, or an empty caption.

    """
    document = _load_json(path)
    file_names = _coco_images(_field(document, "images", list, path), path)
    for i, annotation in enumerate(_field(document, "annotations", list, path)):
        source = f"{path}: annotations[{i}]"
        image_id = _field(annotation, "image_id", int, source)
        if image_id not in file_names:
            raise IngestError(f"{source}: image_id {image_id} is not among the file's images")
        yield CaptionRecord(
            image_id=file_names[image_id],
            caption_id=str(_field(annotation, "id", int, source)),
            caption=check_caption(_field(annotation, "caption", str, source), source),
            split=split,
            list_key=str(image_id),
            source=source,
        )
