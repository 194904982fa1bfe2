"""``build_index``: embed a collection (the Beam job), build its searchers, publish a version.

Re-indexing with the encoder version of the latest index version embeds only photos that are
new or whose content changed (path + SHA-256), takes the others' rows from that version and
drops the rows of deleted photos; with another encoder version everything is embedded again.
When nothing changed, nothing is published. Any error before publication (bad arguments, an
empty or unreadable collection, a missing model, no photo that could be indexed) publishes
nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from serving.collection import assemble, job, layout, store
from serving.collection.encoder import EncoderInfo, inspect_encoder, stage_model
from serving.collection.searcher import build_searcher, save_searcher, settings_for
from serving.collection.sources import Captions, list_collection, read_captions
from serving.layout import DEFAULT_BEAM_ARGS
from serving.publish import list_versions, next_version, publish_staged, staging_dir

KEEP_VERSIONS = 2


@dataclasses.dataclass(frozen=True)
class IndexRequest:
    """What ``python -m pipeline index`` was asked to do.

    Attributes:
        collection: SRC: a folder or glob of photos, or a features ``.npy`` (see ``sources``).
        name: the index name (a plain name).
        serving_dir: the Pusher's serving directory (the encoder is read, the index written).
        model_name: the served encoder's name.
        captions: a Flickr-format captions file for the photos, or None.
        beam_args: Beam pipeline options (runner and its settings).
        work_dir: where the job writes its shards (default: a temporary folder next to the
            index; a ``gs://`` folder for Dataflow).
        batch_size: photos per ``RunInference`` call.

    """

    collection: str
    name: str
    serving_dir: str = "runs/serving"
    model_name: str = "xmodal"
    captions: str | None = None
    beam_args: tuple[str, ...] = DEFAULT_BEAM_ARGS
    work_dir: str | None = None
    batch_size: int = 32


@dataclasses.dataclass(frozen=True)
class IndexResult:
    """The index version that serves the collection now.

    Attributes:
        directory: its folder.
        manifest: its manifest.
        published: False when nothing changed and the existing version was kept.

    """

    directory: str
    manifest: layout.Manifest
    published: bool


class EmptyCollectionError(ValueError):
    """No item of the collection could be indexed (nothing is published)."""


def rebuild_command(request: IndexRequest) -> str:
    """The command line that (re)builds ``request``'s index."""
    import shlex

    words = ["python", "-m", "pipeline", "index", "--collection", request.collection,
             "--name", request.name, "--serving-dir", request.serving_dir,
             "--model-name", request.model_name]
    if request.captions:
        words += ["--captions", request.captions]
    return shlex.join(words)


def _previous(base: str, encoder: EncoderInfo, root: str,
              kind: str) -> tuple[str, layout.Manifest] | None:
    """The latest version of this index if made by the same encoder version from the same SRC."""
    versions = list_versions(base)
    if not versions:
        return None
    directory = os.path.join(base, str(versions[-1]))
    manifest = layout.read_manifest(directory)
    same = (manifest.model_name, manifest.model_version, manifest.collection,
            manifest.source_kind) == (encoder.model_name, encoder.version, root, kind)
    return (directory, manifest) if same else None


def _remote_work_dir(beam_args: tuple[str, ...]) -> str | None:
    """A fresh folder under the job's ``--temp_location`` when that is remote (Dataflow)."""
    options = PipelineOptions(list(beam_args)).get_all_options(retain_unknown_options=True)
    temp = options.get("temp_location") or ""
    if "://" not in temp:
        return None
    return f"{temp.rstrip('/')}/xmodal-index-{uuid.uuid4().hex}"


def _run_job(request: IndexRequest, spec: job.JobSpec) -> float:
    """Runs the embedding job; returns its wall seconds."""
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(list(request.beam_args))) as pipeline:
        job.build_job(pipeline, spec)
    return time.perf_counter() - start


def build_index(request: IndexRequest) -> IndexResult:
    """Embeds ``request.collection`` and publishes its index (see the module docstring).

    Raises:
        ValueError: a name that is not plain, a model without the needed signature, a
            malformed captions or features file.
        FileNotFoundError: SRC missing, unreadable or empty; no pushed encoder.
        EmptyCollectionError: every item was skipped.

    """
    base = layout.index_base(request.serving_dir, request.name)
    encoder = inspect_encoder(request.serving_dir, request.model_name)
    listing = list_collection(request.collection)
    encoder.check_source(listing.kind, bool(request.captions))
    captions = read_captions(request.captions, listing.ids) if request.captions else None
    previous = _previous(base, encoder, listing.root, listing.kind)
    previous_photos = store.load_photos(previous[0], mmap=False) if previous else None
    known = (dict(zip(previous_photos.ids.tolist(), previous_photos.hashes.tolist(), strict=True))
             if previous_photos is not None else {})
    os.makedirs(base, exist_ok=True)
    work = request.work_dir or _remote_work_dir(request.beam_args) or tempfile.mkdtemp(
        prefix=".work-", dir=base)
    try:
        spec = job.JobSpec(listing, stage_model(encoder.directory, work), work, known, captions,
                           request.batch_size)
        embed_seconds = _run_job(request, spec)
        parts = assemble.assemble(work, encoder.embedding_dim, previous_photos, captions)
    finally:
        if request.work_dir is None and FileSystems.exists(work):
            FileSystems.delete([work])
    if not len(parts.photos.ids):
        raise EmptyCollectionError(assemble.empty_message(request.collection, parts.skipped))
    fingerprint = assemble.fingerprint(parts.photos, parts.skipped)
    if previous and _unchanged(previous[1], fingerprint, request, captions):
        return IndexResult(previous[0], previous[1], published=False)
    counts = assemble.counts(listing, parts, known, captions)
    return _publish(request, base, encoder, listing.root, listing.kind,
                    (parts, fingerprint, counts, embed_seconds))


def _unchanged(manifest: layout.Manifest, fingerprint: str, request: IndexRequest,
               captions: Captions | None) -> bool:
    return (manifest.fingerprint == fingerprint
            and manifest.captions_file == (request.captions or "")
            and manifest.counts.get("captions", 0) == (len(captions.ids) if captions else 0))


def _publish(request: IndexRequest, base: str, encoder: EncoderInfo, root: str, kind: str,
             built: tuple[assemble.Parts, str, dict[str, int], float]) -> IndexResult:
    """Builds the searchers into a staging folder, writes the manifest, publishes, prunes."""
    parts, fingerprint, counts, embed_seconds = built
    start = time.perf_counter()
    version = next_version(list_versions(base))
    staging = staging_dir(base, version)
    try:
        searchers = {layout.PHOTOS: _write_part(staging, layout.PHOTOS, parts.photos)}
        if parts.captions is not None:
            searchers[layout.CAPTIONS] = _write_part(staging, layout.CAPTIONS, parts.captions)
        index_seconds = time.perf_counter() - start
        manifest = layout.Manifest(
            name=request.name, version=version, model_name=encoder.model_name,
            model_version=encoder.version, collection=root, source_kind=kind,
            captions_file=request.captions or "", fingerprint=fingerprint,
            embedding_dim=encoder.embedding_dim, counts=counts,
            skipped=parts.skipped + parts.captions_skipped,
            searchers=searchers, seconds={"embed": round(embed_seconds, 3),
                                          "index": round(index_seconds, 3),
                                          "total": round(embed_seconds + index_seconds, 3)},
            created=time.time(), command=rebuild_command(request))
        layout.write_manifest(manifest, staging)
        directory = publish_staged(staging, base, version)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    for old in list_versions(base)[:-KEEP_VERSIONS]:
        shutil.rmtree(os.path.join(base, str(old)), ignore_errors=True)
    return IndexResult(directory, manifest, published=True)


def _write_part(staging: str, part: str, rows: store.Photos | store.CaptionRows) -> dict:
    """Saves one part's arrays and searcher; returns its settings for the manifest."""
    settings = settings_for(len(rows.ids))
    save = store.save_photos if part == layout.PHOTOS else store.save_captions
    save(rows, staging)
    searcher = build_searcher(np.asarray(rows.embeddings, np.float32), settings)
    save_searcher(searcher, os.path.join(staging, part, layout.SCANN_DIR))
    return dataclasses.asdict(settings)

