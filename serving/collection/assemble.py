"""The rows of a new index version: the job's new rows, the unchanged rows of the previous one."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from serving.collection import job, outputs, store
from serving.collection.sources import Captions, Listing


@dataclasses.dataclass(frozen=True)
class Parts:
    """Everything a version holds, before its searchers are built.

    Attributes:
        photos: the indexed photos, sorted by id.
        captions: the indexed captions (of indexed photos), or None when none were given.
        skipped: the photos left out, sorted by file.
        embedded: photos embedded by this job.
        reused: photos whose rows were taken from the previous version.
        captions_skipped: captions left out (no word, or refused by the graph).
        captions_unmatched: captions of no indexed photo.

    """

    photos: store.Photos
    captions: store.CaptionRows | None
    skipped: list[dict[str, str]]
    embedded: int
    reused: int
    captions_skipped: list[dict[str, str]]
    captions_unmatched: int


def _path(work: str, name: str) -> str:
    return f"{work.rstrip('/')}/{name}"


def _photos(work: str, dim: int, previous: store.Photos | None) -> tuple[store.Photos, int, int]:
    """New rows + reused rows of ``previous``, sorted by id (captions filled in later)."""
    new, new_rows = outputs.read_records(work, job.PHOTO_SHARDS, ("id", "hash"), dim)
    reused = outputs.read_lines(_path(work, job.REUSED_FILE))
    ids, hashes, rows = [new["id"]], [new["hash"]], [new_rows]
    if reused:
        position = {photo_id: row for row, photo_id in enumerate(previous.ids.tolist())}
        taken = np.asarray([position[photo_id] for photo_id, _ in reused])
        ids.append(previous.ids[taken])
        hashes.append(previous.hashes[taken])
        rows.append(np.asarray(previous.embeddings[taken], np.float32))
    all_ids = np.concatenate(ids).astype(str)
    order = np.argsort(all_ids, kind="stable")
    photos = store.Photos(all_ids[order], np.concatenate(hashes).astype(str)[order],
                          np.full(len(order), "", dtype=str), np.concatenate(rows)[order])
    return photos, len(new_rows), len(reused)


def _captions(work: str, dim: int, photos: store.Photos) -> tuple[store.CaptionRows, int]:
    """The embedded captions of indexed photos, sorted by id; and how many had no such photo."""
    columns, rows = outputs.read_records(work, job.CAPTION_SHARDS, ("id", "photo_id", "text"),
                                         dim)
    keep = np.isin(columns["photo_id"], photos.ids)
    order = np.argsort(columns["id"][keep], kind="stable")
    result = store.CaptionRows(columns["id"][keep][order], columns["text"][keep][order],
                               columns["photo_id"][keep][order], rows[keep][order])
    return result, int((~keep).sum())


def _display(photos: store.Photos, captions: store.CaptionRows) -> store.Photos:
    """Each photo's caption with the smallest id (captions are sorted by id)."""
    first: dict[str, str] = {}
    for photo_id, text in zip(captions.photo_ids.tolist(), captions.texts.tolist(), strict=True):
        first.setdefault(photo_id, text)
    shown = np.asarray([first.get(photo_id, "") for photo_id in photos.ids.tolist()], dtype=str)
    return dataclasses.replace(photos, captions=shown)


def assemble(work: str, dim: int, previous: store.Photos | None,
             captions: Captions | None) -> Parts:
    """Reads the job's output folder ``work`` and merges it with ``previous``'s rows."""
    photos, embedded, reused = _photos(work, dim, previous)
    skipped = sorted(outputs.read_lines(_path(work, job.SKIPPED_FILE)), key=lambda s: s["file"])
    caption_rows, unmatched, caption_skipped = None, 0, []
    if captions is not None:
        caption_rows, unmatched = _captions(work, dim, photos)
        photos = _display(photos, caption_rows)
        caption_skipped = captions.skipped + outputs.read_lines(
            _path(work, "caption_" + job.SKIPPED_FILE))
        unmatched += captions.unmatched
    return Parts(photos, caption_rows, skipped, embedded, reused, caption_skipped, unmatched)


def fingerprint(photos: store.Photos, skipped: list[dict[str, str]]) -> str:
    """``sha256:<hex>`` over the sorted (id, content hash) and (skipped file, reason) lines."""
    digest = hashlib.sha256()
    for photo_id, content in zip(photos.ids.tolist(), photos.hashes.tolist(), strict=True):
        digest.update(f"{photo_id}\t{content}\n".encode())
    for entry in skipped:
        digest.update(f"{entry['file']}\tskipped:{entry['reason']}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def counts(listing: Listing, parts: Parts, known: dict[str, str],
           captions: Captions | None) -> dict[str, int]:
    """The manifest's counts."""
    return {
        "listed": len(listing.ids), "indexed": len(parts.photos.ids),
        "embedded": parts.embedded, "reused": parts.reused, "skipped": len(parts.skipped),
        "deleted": len(set(known) - set(listing.ids)),
        "captions": 0 if parts.captions is None else len(parts.captions.ids),
        "captions_skipped": len(parts.captions_skipped),
        "captions_unmatched": parts.captions_unmatched if captions is not None else 0,
    }


def empty_message(collection: str, skipped: list[dict[str, str]]) -> str:
    """The one line for a collection of which no item could be indexed."""
    if not skipped:
        return f"collection {collection!r}: no item to index"
    first = skipped[0]
    return (f"collection {collection!r}: none of its {len(skipped)} file(s) could be indexed; "
            f"first: {first['file']} ({first['reason']}: {first['detail']})")
