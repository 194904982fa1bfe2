"""Compiling the pipeline for Vertex AI / Kubeflow Pipelines V2 (no cloud access needed)."""

from __future__ import annotations

import argparse
import json

import pytest

from benchmarks.slices import write_flickr_slice
from pipeline import config as config_lib
from pipeline import vertex_runner
from pipeline.pipeline import with_beam_plugins

pytestmark = pytest.mark.e2e

IMAGE = "gcr.io/test-project/xmodal:1"
EXPECTED_ORDER = [
    ("CaptionExampleGen", "StatisticsGen"),
    ("StatisticsGen", "ExampleValidator"),
    ("SchemaGen", "ExampleValidator"),
    ("ExampleValidator", "AnomaliesGate"),
    ("AnomaliesGate", "Transform"),
    ("Transform", "Trainer"),
    ("Trainer", "Evaluator"),
    ("Evaluator", "Pusher"),
]


@pytest.fixture(scope="module")
def spec(flickr8k_dir, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("compile")
    data = write_flickr_slice(flickr8k_dir, tmp / "data", n_train=20, n_eval=5)
    config = config_lib.from_dict(
        {
            "data_dir": str(data),
            "pipeline_root": str(tmp / "root"),
            "trainer": {"loss": "fhn", "mining": "global", "epochs": 7},
            "eval": {"rsum_lower_bound": 123.0},
        }
    )
    args = argparse.Namespace(
        target="vertex",
        output=str(tmp / "spec.json"),
        image=IMAGE,
        project="test-project",
        region="europe-west4",
        temp_location="gs://bucket/tmp",
    )
    assert vertex_runner.main(config, args) == 0
    return json.loads((tmp / "spec.json").read_text())


def _tasks(spec: dict) -> dict:
    return spec["pipelineSpec"]["root"]["dag"]["tasks"]


def test_every_component_is_a_task_in_dependency_order(spec):
    tasks = _tasks(spec)
    assert {"CaptionExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"} <= set(tasks)
    for upstream, downstream in EXPECTED_ORDER:
        assert upstream in tasks[downstream].get("dependentTasks", []), (upstream, downstream)


def test_parameters_and_images_reach_the_spec(spec):
    text = json.dumps(spec)
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images == {IMAGE}
    assert "trainer.task.run_fn" in text
    assert "trainer.preprocessing.preprocessing_fn" in text
    assert '\\"mining\\": \\"global\\"' in text or '"mining": "global"' in text
    assert "--runner=DataflowRunner" in text
    assert "--region=europe-west4" in text
    assert f"--sdk_container_image={IMAGE}" in text
    # Dataflow workers register the TF-Text ops (WordPiece graphs) before loading any graph.
    assert "--beam_plugins=tensorflow_text" in text
    assert "123" in text  # the rsum lower bound inside the Evaluator's eval_config


def test_beam_plugins_are_added_once():
    assert with_beam_plugins(("--runner=DirectRunner",)) == [
        "--runner=DirectRunner",
        "--beam_plugins=tensorflow_text",
    ]
    named = ["--beam_plugins=tensorflow_text", "--beam_plugins=my.plugin"]
    assert with_beam_plugins(named) == named
