"""The embedding job as Dataflow gets it: a portable graph over ``gs://`` paths whose every step
serializes, and a local encoder staged where remote workers can read it.

Constructing a ``beam.Pipeline`` with ``--runner=DataflowRunner`` validates the options against
GCS (network); the runner only submits the portable proto that ``to_runner_api`` builds here.
"""

from __future__ import annotations

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from serving.collection.encoder import stage_model
from serving.collection.job import JobSpec, build_job
from serving.collection.sources import PHOTOS, Captions, Listing


def test_the_job_builds_a_portable_graph_over_gcs_paths():
    listing = Listing(PHOTOS, "gs://my-bucket/photos/", ["gs://my-bucket/photos/a.jpg"],
                      ["a.jpg"], [1000])
    captions = Captions(["a.jpg#0"], ["a dog"], ["a.jpg"], 0, [])
    spec = JobSpec(listing, "gs://my-bucket/work/encoder", "gs://my-bucket/work", {}, captions)
    pipeline = beam.Pipeline(options=PipelineOptions([]))
    build_job(pipeline, spec)
    proto = pipeline.to_runner_api(use_fake_coders=False)  # pickles every DoFn, as on submit
    names = {t.unique_name for t in proto.components.transforms.values()}
    for step in ("Read", "Embed", "WritePhotos", "EmbedCaptions", "WriteCaptions",
                 "SkippedWrite", "ReusedWrite"):
        assert step in names, sorted(names)


def test_a_local_encoder_is_copied_under_a_remote_work_dir(toy_model_dir):
    staged = stage_model(str(toy_model_dir), "ram://collection-work")
    assert staged == "ram://collection-work/encoder"
    local = sorted(str(p.relative_to(toy_model_dir)) for p in toy_model_dir.rglob("*")
                   if p.is_file())
    remote = sorted(f"{root[len(staged) + 1:]}/{name}".lstrip("/")
                    for root, _, files in tf.io.gfile.walk(staged) for name in files)
    assert remote == local and "saved_model.pb" in remote
    assert stage_model(str(toy_model_dir), "/tmp/local-work") == str(toy_model_dir)
