"""End-to-end runs of the whole pipeline on a small slice of real Flickr8k (slow; CI runs them)."""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np
import pytest

from benchmarks.slices import write_flickr_slice
from pipeline import config as config_lib
from pipeline import mlmd_summary
from pipeline import run as run_lib

pytestmark = pytest.mark.e2e

# The data nodes upstream of the Trainer (a run killed in the Trainer reuses all of them).
DATA_NODES = {
    "CaptionExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "AnomaliesGate",
    "Transform",
}
ALL_NODES = DATA_NODES | {
    "baseline_model",
    "Trainer",
    "RelevanceGen",
    "Evaluator",
    "EvalReport",
    "Pusher",
}
# Small and quick, but a real model: rsum on a 100-image gallery is far above chance (~32).
FAST_TRAINER = {
    "text_tower": "mean",
    "embedding_dim": 256,
    "word_dim": 128,
    "epochs": 4,
    "batch_size": 128,
    "learning_rate": 1e-3,
}


def make_config(
    tmp: pathlib.Path, data_dir: pathlib.Path, *, transform: dict | None = None, **trainer
) -> config_lib.PipelineConfig:
    return config_lib.from_dict(
        {
            "data_dir": str(data_dir),
            "pipeline_root": str(tmp / "root"),
            "serving_dir": str(tmp / "serving"),
            "trainer": {**FAST_TRAINER, **trainer},
            "transform": {"vocab_frequency_threshold": 1, **(transform or {})},
            "eval": {"rsum_lower_bound": 60.0, "rsum_change_threshold": -5.0},
        }
    )


def last_run(config: config_lib.PipelineConfig) -> dict[str, mlmd_summary.NodeRun]:
    store = mlmd_summary.open_store(config.metadata_db)
    return mlmd_summary.run_nodes(
        store, mlmd_summary.pipeline_runs(store, config.pipeline_name)[-1]
    )


def pushed_versions(config: config_lib.PipelineConfig) -> list[str]:
    model_dir = pathlib.Path(config.serving_dir) / config.model_name
    if not model_dir.is_dir():
        return []
    return sorted(p.name for p in model_dir.iterdir() if p.name.isdigit())


def blessed(nodes: dict[str, mlmd_summary.NodeRun]) -> bool:
    blessing = nodes["Evaluator"].outputs["blessing"][0]
    return mlmd_summary.custom_property(blessing, "blessed") == 1


def pushed(nodes: dict[str, mlmd_summary.NodeRun]) -> bool:
    artifact = next(iter(nodes["Pusher"].outputs.values()))[0]
    return mlmd_summary.custom_property(artifact, "pushed") == 1


@pytest.fixture(scope="module")
def flickr_slice(flickr8k_dir, tmp_path_factory) -> pathlib.Path:
    return write_flickr_slice(
        flickr8k_dir, tmp_path_factory.mktemp("slice"), n_train=600, n_eval=100
    )


@pytest.mark.slow(minutes=5)
def test_full_pipeline_blesses_pushes_then_serves_from_cache(flickr_slice, tmp_path, capsys):
    config = make_config(tmp_path, flickr_slice)
    assert run_lib.run(config) == 0
    first = last_run(config)
    assert set(first) == ALL_NODES
    assert all(node.state == "ran" for node in first.values()), {
        n.node_id: n.state for n in first.values()
    }
    assert blessed(first) and pushed(first)
    versions = pushed_versions(config)
    assert len(versions) == 1
    version_dir = pathlib.Path(config.serving_dir) / config.model_name / versions[0]
    assert (version_dir / "saved_model.pb").is_file()
    assert (pathlib.Path(config.serving_dir) / "models.config").is_file()
    summary = capsys.readouterr().out
    assert "blessing: BLESSED" in summary and f"pushed: version {versions[0]}" in summary

    assert run_lib.run(config) == 0
    second = last_run(config)
    must_rerun = {"baseline_model", "Evaluator", "EvalReport", "Pusher"}
    cached = {n for n, node in second.items() if node.state == "cached"}
    assert ALL_NODES - must_rerun <= cached, {n.node_id: n.state for n in second.values()}
    # The cached Trainer's model is now the baseline itself: never re-blessed nor re-pushed.
    assert not blessed(second) and not pushed(second)
    assert pushed_versions(config) == versions


def candidate_metrics(nodes: dict[str, mlmd_summary.NodeRun]) -> dict[str, float]:
    """The candidate model's metrics in the Evaluator's output, by name."""
    import tensorflow_model_analysis as tfma

    evaluation = nodes["Evaluator"].outputs["evaluation"][0]
    return {
        kv.key.name: kv.value.double_value.value
        for result in tfma.load_metrics(evaluation.uri)
        for kv in result.metric_keys_and_values
        if not kv.key.is_diff and kv.key.model_name != "baseline"
    }


@pytest.mark.slow(minutes=8)
def test_default_minilm_text_tower_evaluates_pushes_and_embeds_raw_text(flickr_slice, tmp_path,
                                                                         capsys):
    """The default tower (MiniLM, top layer fine-tuned): TF-Text ops in Transform, Trainer,
    Evaluator, report, Pusher, client; the Trainer says which setting the host probe chose."""
    from components.retrieval_metrics import metric_names
    from serving.client import EmbeddingClient, LocalBackend

    config = config_lib.from_dict({
        "data_dir": str(flickr_slice), "pipeline_root": str(tmp_path / "root"),
        "serving_dir": str(tmp_path / "serving"), "trainer": {"epochs": 2},
        "eval": {"rsum_lower_bound": 60.0, "rsum_change_threshold": -5.0}})
    assert run_lib.run(config) == 0
    out = capsys.readouterr().out
    # The configuration alone decides the tower: the host's rate is reported, never acted on.
    assert re.search(r"^host: \d+ GFLOP/s; text tower MiniLM with the top 1 layer\(s\) "
                     r"fine-tuned, as configured$", out, re.MULTILINE), out
    assert re.search(r"^epoch 2 \(\d+\.\d+ s/step\) loss \d+\.\d+ eval: ", out, re.MULTILINE), out
    nodes = last_run(config)
    assert all(node.state == "ran" for node in nodes.values()), {
        n.node_id: n.state for n in nodes.values()
    }
    found = candidate_metrics(nodes)
    assert set(metric_names()) <= set(found), sorted(found)
    assert found["rsum"] >= config.eval.rsum_lower_bound
    assert blessed(nodes) and pushed(nodes)
    (version,) = pushed_versions(config)
    client = EmbeddingClient(
        LocalBackend(str(pathlib.Path(config.serving_dir) / config.model_name / version))
    )
    text = client.embed_text(
        ["a dog runs on the beach", "A DOG RUNS ON THE BEACH", "two children play in the snow"]
    )
    assert text.shape == (3, 1024)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    # BERT-uncased WordPiece in the served graph: case does not matter, words do.
    np.testing.assert_allclose(text[0], text[1], atol=1e-6)
    assert float(text[0] @ text[2]) < 0.99


@pytest.mark.slow(minutes=4)
def test_broken_candidate_is_not_blessed_and_nothing_is_pushed(flickr_slice, tmp_path):
    # A learning rate of 1e-9 leaves the towers at their random initialization.
    config = make_config(tmp_path, flickr_slice, learning_rate=1e-9, epochs=1)
    assert run_lib.run(config) == 0
    nodes = last_run(config)
    assert nodes["Evaluator"].state == "ran"
    assert not blessed(nodes) and not pushed(nodes)
    assert pushed_versions(config) == []


@pytest.mark.slow(minutes=8)
def test_retrain_pushes_new_span_only_once(flickr8k_dir, tmp_path):
    data = tmp_path / "drops"
    write_flickr_slice(flickr8k_dir, data / "span-1", n_train=500, n_eval=100)
    config = make_config(tmp_path, data)
    assert run_lib.retrain(config) == 0
    first = pushed_versions(config)
    assert len(first) == 1

    write_flickr_slice(flickr8k_dir, data / "span-2", n_train=500, n_eval=100, offset=500)
    assert run_lib.retrain(config) == 0
    nodes = last_run(config)
    assert nodes["Trainer"].state == "ran" and nodes["CaptionExampleGen"].state == "ran"
    examples = nodes["CaptionExampleGen"].outputs["examples"][0]
    assert mlmd_summary.custom_property(examples, "span") == 2
    second = pushed_versions(config)
    assert len(second) == (2 if blessed(nodes) else 1)
    assert pushed(nodes) == blessed(nodes)

    runs_before = mlmd_summary.pipeline_runs(
        mlmd_summary.open_store(config.metadata_db), config.pipeline_name
    )
    assert run_lib.retrain(config) == 0
    runs_after = mlmd_summary.pipeline_runs(
        mlmd_summary.open_store(config.metadata_db), config.pipeline_name
    )
    assert runs_after == runs_before  # no new run at all
    assert pushed_versions(config) == second


def write_jpeg_subset(flickr8k_dir: pathlib.Path, data: pathlib.Path,
                      n_train: int) -> tuple[list[str], list[str]]:
    """Flickr8k's files restricted to the shipped JPEGs (the first ``n_train`` of them, by name,
    train; the rest dev) under a new folder ``data``; returns (train, dev) names."""
    images = sorted(p.name for p in (flickr8k_dir / "images").glob("*.jpg"))
    train, dev = images[:n_train], images[n_train:]
    data.mkdir()
    (data / "Flickr_8k.trainImages.txt").write_text("\n".join(train) + "\n")
    (data / "Flickr_8k.devImages.txt").write_text("\n".join(dev) + "\n")
    keep = set(images)
    lines = (flickr8k_dir / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines()
    captions = [line for line in lines if line.split("#", 1)[0] in keep]
    (data / "Flickr8k.token.txt").write_text("\n".join(captions) + "\n", encoding="utf-8")
    return train, dev


@pytest.mark.slow(minutes=5)
def test_images_in_front_of_example_gen(flickr8k_dir, tmp_path):
    """--images: the featurizer's output feeds ExampleGen; the run blesses and pushes."""
    data = tmp_path / "data"
    write_jpeg_subset(flickr8k_dir, data, n_train=240)
    config = config_lib.apply_overrides(
        make_config(tmp_path, data),
        [f"images_dir={flickr8k_dir / 'images'}", "eval.rsum_lower_bound=40"],
    )
    assert run_lib.run(config) == 0
    nodes = last_run(config)
    assert nodes["ImageFeaturizer"].state == "ran"
    features = next(iter(nodes["ImageFeaturizer"].outputs.values()))[0]
    assert mlmd_summary.custom_property(features, "num_featurized") == 300
    assert blessed(nodes) and pushed(nodes)


@pytest.mark.slow(minutes=6)
def test_killed_in_trainer_then_rerun_completes_from_cache(flickr_slice, tmp_path):
    """Kill the whole run while the Trainer runs; the re-run reuses everything upstream."""
    import json
    import signal
    import subprocess
    import sys
    import time

    config = make_config(tmp_path, flickr_slice, epochs=30)
    config_file = tmp_path / "config.json"
    values = {
        "data_dir": config.data_dir,
        "pipeline_root": config.pipeline_root,
        "serving_dir": config.serving_dir,
        "trainer": config.configured["trainer"],
        "transform": config.configured["transform"],
        "eval": {"rsum_lower_bound": 60.0, "rsum_change_threshold": -5.0},
    }
    config_file.write_text(json.dumps(values))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--config", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Kill as soon as the Trainer has written its first training logs (TensorBoard events).
    model_run = pathlib.Path(config.pipeline_root) / "Trainer" / "model_run"
    deadline = time.monotonic() + 1500
    while not any(p.is_file() for p in model_run.rglob("*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the Trainer never started"
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be killed in the Trainer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert pushed_versions(config) == []  # nothing half-written is visible

    # A fresh config object with the trainer's real epochs: the killed run's inputs are reused.
    assert run_lib.run(config_lib.apply_overrides(config, ["trainer.epochs=30"])) == 0
    nodes = last_run(config)
    assert {n for n in DATA_NODES if nodes[n].state == "cached"} == DATA_NODES
    assert nodes["Trainer"].state == "ran"
    assert blessed(nodes) and pushed(nodes)
    assert len(pushed_versions(config)) == 1
    leftovers = [p.name for p in (pathlib.Path(config.serving_dir) / config.model_name).iterdir()]
    assert all(name.isdigit() for name in leftovers), leftovers
    # The killed run's Trainer execution is marked canceled and its empty model folder removed.
    from ml_metadata.proto import metadata_store_pb2

    store = mlmd_summary.open_store(config.metadata_db)
    states = [e.last_known_state for e in store.get_executions()]
    assert metadata_store_pb2.Execution.RUNNING not in states
    assert metadata_store_pb2.Execution.CANCELED in states
    model_dirs = list((pathlib.Path(config.pipeline_root) / "Trainer" / "model").iterdir())
    assert len(model_dirs) == 1 and any(p.is_file() for p in model_dirs[0].rglob("*"))


@pytest.mark.slow(minutes=6)
def test_beam_multi_processing_gives_the_same_data_and_vocabulary(flickr_slice, tmp_path):
    """2 DirectRunner worker processes: same examples, schema checks, vocabulary, blessing."""
    results = {}
    for mode, extra in (
        ("in_process", []),
        ("multi_processing", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
    ):
        config = config_lib.from_dict(
            {
                **config_lib.plain_values(make_config(tmp_path / mode, flickr_slice)),
                "beam_args": ["--direct_running_mode=in_memory", "--direct_num_workers=1", *extra],
            }
        )
        assert run_lib.run(config) == 0
        nodes = last_run(config)
        examples = nodes["CaptionExampleGen"].outputs["examples"][0]
        transform_graph = nodes["Transform"].outputs["transform_graph"][0]
        vocab = next(pathlib.Path(transform_graph.uri).rglob("transform_fn/assets/*"))
        results[mode] = {
            "counts": {split: _count(examples.uri, split) for split in ("train", "eval")},
            "vocabulary": vocab.read_text(),
            "blessed": blessed(nodes),
        }
    assert results["in_process"] == results["multi_processing"]
    assert results["in_process"]["counts"] == {"train": 3000, "eval": 500}


def _count(examples_uri: str, split: str) -> int:
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _write_caption_features(data_dir: pathlib.Path, num_clusters: int, dim: int) -> None:
    """Caption features in the synthetic dataset's layout: its cluster's centroid plus noise."""
    rng = np.random.default_rng(7)
    centroids = rng.normal(size=(num_clusters, dim))
    ids, rows = [], []
    for line in (data_dir / "synthetic.token.txt").read_text(encoding="utf-8").splitlines():
        caption_id = line.split("\t", 1)[0]
        image_number = int(caption_id.split("#", 1)[0][len("synth_"):-len(".jpg")])
        ids.append(caption_id)
        rows.append(centroids[image_number % num_clusters] + 0.3 * rng.normal(size=dim))
    np.save(data_dir / "features" / "captions.npy", np.asarray(rows, np.float32))
    (data_dir / "features" / "captions.ids.txt").write_text("\n".join(ids) + "\n")


@pytest.mark.usefixtures("shipped_image_backbone")
def test_features_mode_text_tower_is_blessed_and_pushed(tmp_path):
    """text_tower=linear (embed_text takes caption_features) passes the Pusher's contract.

    Generated data (120 images, 8 clusters, caption features beside the image features); about
    4-8 minutes on a 2-core host, most of it TFX start-up and Beam jobs.
    """
    from components.caption_example_gen.synthetic import SyntheticConfig, write_synthetic_dataset
    from serving.client import EmbeddingClient, LocalBackend

    data = tmp_path / "data"
    synthetic = SyntheticConfig()
    write_synthetic_dataset(str(data), synthetic)
    _write_caption_features(data, synthetic.num_clusters, dim=16)
    config = config_lib.from_dict({
        "data_dir": str(data),
        "pipeline_root": str(tmp_path / "root"),
        "serving_dir": str(tmp_path / "serving"),
        "dataset": {"caption_features": "features/captions.npy",
                    "caption_feature_ids": "features/captions.ids.txt",
                    "caption_feature_dim": 16},
        "trainer": {"text_tower": "linear", "embedding_dim": 32, "epochs": 20, "batch_size": 64,
                    "learning_rate": 1e-2},
        # Chance is about 100 on this 30-image gallery; a learnt model gets well above 300.
        "eval": {"rsum_lower_bound": 200.0},
    })
    assert run_lib.run(config) == 0
    nodes = last_run(config)
    assert blessed(nodes) and pushed(nodes), candidate_metrics(nodes).get("rsum")
    (version,) = pushed_versions(config)
    encoder = pathlib.Path(config.serving_dir) / config.model_name / version
    client = EmbeddingClient(LocalBackend(str(encoder)))
    image = client.embed_image(np.ones((2, synthetic.feature_dim), np.float32))
    assert image.shape == (2, 32)
