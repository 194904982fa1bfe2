"""Compiling the pipeline for Vertex AI / Kubeflow Pipelines V2 (no cloud access needed)."""

from __future__ import annotations

import argparse
import json
import os
import pathlib

import pytest

from benchmarks.slices import write_flickr_slice
from pipeline import config as config_lib
from pipeline import vertex_runner
from pipeline.pipeline import with_beam_plugins
from trainer.config import TrainerConfig

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
    ("RelevanceGen", "Evaluator"),
    ("Evaluator", "Pusher"),
]
ROOT = "gs://xmodal-test-bucket/root"


def _refuse_remote(path, *args, **kwargs):
    raise AssertionError(f"compiling touched {path!r}")


@pytest.fixture(scope="module")
def no_cloud():
    """Any gs:// access through TensorFlow's or TFX's file layer fails the test."""
    import tensorflow as tf
    from tfx.dsl.io import fileio

    patch = pytest.MonkeyPatch()
    for module, names in ((tf.io.gfile, ("exists", "makedirs", "GFile", "glob", "listdir")),
                          (fileio, ("exists", "makedirs", "open", "glob", "listdir", "mkdir"))):
        for name in names:
            original = getattr(module, name)

            def guarded(path, *args, _original=original, **kwargs):
                if str(path).startswith("gs://"):
                    _refuse_remote(path)
                return _original(path, *args, **kwargs)

            patch.setattr(module, name, guarded)
    yield
    patch.undo()


def _compile(config, output: pathlib.Path, target: str = "vertex") -> dict:
    args = argparse.Namespace(
        target=target,
        output=str(output),
        image=IMAGE,
        project="test-project",
        region="europe-west4",
        temp_location="gs://xmodal-test-bucket/tmp",
    )
    assert vertex_runner.main(config, args) == 0
    return json.loads(output.read_text())


def _files(folder: pathlib.Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def compiled(flickr8k_dir, tmp_path_factory, no_cloud) -> tuple[dict, set, set]:
    """(spec, files of the working folder before, after): compiled with a gs:// root."""
    tmp = tmp_path_factory.mktemp("compile")
    data = write_flickr_slice(flickr8k_dir, tmp / "data", n_train=20, n_eval=5)
    (tmp / "out").mkdir()
    before = _files(tmp)
    cwd = os.getcwd()
    os.chdir(tmp)  # a root mistaken for a local path would appear here
    try:
        spec = _compile(_config(data), tmp / "out" / "spec.json")
    finally:
        os.chdir(cwd)
    return spec, before, _files(tmp)


@pytest.fixture(scope="module")
def spec(compiled) -> dict:
    return compiled[0]


def _config(data: pathlib.Path, **extra) -> config_lib.PipelineConfig:
    return config_lib.from_dict(
        {
            "data_dir": str(data),
            "pipeline_root": ROOT,
            "trainer": {"loss": "fhn", "mining": "global", "epochs": 7},
            "eval": {"rsum_lower_bound": 123.0},
            **extra,
        }
    )


def test_compiling_writes_only_the_spec_and_no_metadata_store(compiled):
    _, before, after = compiled
    assert after - before == {"out/spec.json"}
    assert not any("metadata" in name or name.endswith(".db") for name in after)


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


def _artifact_types(spec: dict, task: str, direction: str) -> dict[str, str]:
    """``{key: artifact type title}`` of a task's input or output artifacts in the KFP v2 IR."""
    component = spec["pipelineSpec"]["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    definition = spec["pipelineSpec"]["components"][component][f"{direction}Definitions"]
    schemas = {key: value["artifactType"]["instanceSchema"]
               for key, value in definition.get("artifacts", {}).items()}
    return {key: schema.split("\n", 1)[0].removeprefix("title: ")
            for key, schema in schemas.items()}


def test_relevance_reaches_the_evaluator_as_an_artifact(spec):
    assert _artifact_types(spec, "RelevanceGen", "output") == {
        "relevance": "xmodal.RelevanceMatrix"
    }
    assert _artifact_types(spec, "Evaluator", "input")["relevance"] == (
        "xmodal.RelevanceMatrix"
    )
    evaluator_inputs = _tasks(spec)["Evaluator"]["inputs"]["artifacts"]["relevance"]
    assert evaluator_inputs["taskOutputArtifact"] == {
        "producerTask": "RelevanceGen", "outputArtifactKey": "relevance"
    }
    assert ROOT not in json.dumps(_tasks(spec)["Evaluator"])  # no side folder in its config


def test_image_features_reach_example_gen_as_an_artifact(flickr8k_dir, tmp_path, no_cloud):
    data = write_flickr_slice(flickr8k_dir, tmp_path / "data", n_train=20, n_eval=5)
    config = _config(data, images_dir="gs://xmodal-test-bucket/images")
    spec = _compile(config, tmp_path / "spec.json", target="kubeflow")
    assert _artifact_types(spec, "ImageFeaturizer", "output") == {
        "image_features": "xmodal.ImageFeatures"
    }
    assert _artifact_types(spec, "CaptionExampleGen", "input") == {
        "image_features": "xmodal.ImageFeatures"
    }
    assert "ImageFeaturizer" in _tasks(spec)["CaptionExampleGen"]["dependentTasks"]


@pytest.mark.parametrize("backend", ["tflite", "tf"])
def test_images_backend_picks_the_featurizer_backbone(flickr8k_dir, tmp_path, no_cloud, backend):
    data = write_flickr_slice(flickr8k_dir, tmp_path / "data", n_train=20, n_eval=5)
    config = _config(data, images_dir="gs://xmodal-test-bucket/images", images_backend=backend)
    spec = _compile(config, tmp_path / "spec.json", target="kubeflow")
    value = _tasks(spec)["ImageFeaturizer"]["inputs"]["parameters"]["backbone"]["runtimeValue"]
    assert json.loads(value["constantValue"]["stringValue"])["kind"] == backend


VERTEX_TRAINING = ["training_job.workers=4", "training_job.machine_type=n1-standard-16",
                   "training_job.accelerator=NVIDIA_TESLA_T4:1"]


def _trainer_custom_config(spec: dict) -> dict:
    value = _tasks(spec)["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]
    return json.loads(value["constantValue"]["stringValue"])


def _trainer_executor_class(spec: dict) -> str:
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    args = executors["Trainer_executor"]["container"]["args"]
    return args[args.index("--executor_class_path") + 1]


def test_vertex_training_options_emit_the_worker_pools(flickr8k_dir, tmp_path, no_cloud):
    data = write_flickr_slice(flickr8k_dir, tmp_path / "data", n_train=20, n_eval=5)
    config = config_lib.apply_overrides(_config(data), VERTEX_TRAINING)
    spec = _compile(config, tmp_path / "spec.json")
    assert _trainer_executor_class(spec) == (
        "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor")
    custom = _trainer_custom_config(spec)
    assert custom["ai_platform_enable_vertex"] is True
    assert custom["ai_platform_vertex_region"] == "europe-west4"
    job = custom["ai_platform_training_args"]
    assert job["project"] == "test-project"
    machine = {"machine_type": "n1-standard-16", "accelerator_type": "NVIDIA_TESLA_T4",
               "accelerator_count": 1}
    assert job["worker_pool_specs"] == [
        {"machine_spec": machine, "replica_count": 1, "container_spec": {"image_uri": IMAGE}},
        {"machine_spec": machine, "replica_count": 3, "container_spec": {"image_uri": IMAGE}},
    ]
    trainer = {key: value for key, value in custom.items() if not key.startswith("ai_platform_")}
    assert TrainerConfig.from_dict(trainer) == config.trainer  # the Trainer's settings as they are
    assert "workers" not in trainer  # the job's size is the pipeline's, not the Trainer's


def test_without_vertex_training_options_the_trainer_stays_a_plain_component(spec):
    assert _trainer_executor_class(spec) == "tfx.components.trainer.executor.GenericExecutor"
    custom = _trainer_custom_config(spec)
    assert not any(key.startswith("ai_platform_") for key in custom)
    configured = {"loss": "fhn", "mining": "global", "epochs": 7}
    # the configured settings over the pipeline's defaults (MiniLM, or its fallback tower),
    # exactly the effective settings that the configuration was parsed into
    assert TrainerConfig.from_dict(custom) == config_lib.from_dict({"trainer": configured}).trainer
    # only what differs from TrainerConfig's defaults, which are the pipeline's default model
    # ("fhn" is the default loss, "minilm" the default tower)
    assert custom == {"mining": "global", "epochs": 7}
    value = _tasks(spec)["Transform"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]
    assert json.loads(value["constantValue"]["stringValue"]) == {}  # WordPiece 64, the default


@pytest.mark.parametrize("option", ["training_job.workers=4",
                                    "training_job.accelerator=NVIDIA_TESLA_T4:1"])
def test_vertex_training_options_without_a_machine_type_fail_before_tfx(option, capsys):
    from pipeline import cli

    assert cli.main(["compile", "--set", option]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: command line: training_job.machine_type: required with")
    assert "\n" not in line


def test_a_malformed_accelerator_names_its_key(capsys):
    from pipeline import cli

    assert cli.main(["compile", "--set", "training_job.machine_type=n1-standard-16",
                     "training_job.accelerator=T4"]) == 2
    assert capsys.readouterr().err.startswith("error: command line: training_job.accelerator: ")
