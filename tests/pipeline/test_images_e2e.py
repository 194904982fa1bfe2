"""A run with ``--images`` pushes an encoder that takes photos: scored by its own signatures.

The 300 Flickr8k JPEGs (240 train, 60 dev) with their real captions go through the featurizer
in front of ExampleGen; the pushed encoder's ``embed_image_bytes`` is scored against the dev
captions beside ``embed_image`` on the featurizer's own features, and ``search --image`` finds a
gallery photo itself. Slow (a whole pipeline run); CI runs it.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from pipeline import config as config_lib
from pipeline import mlmd_summary
from pipeline import run as run_lib
from tests.pipeline.test_e2e import (
    blessed,
    last_run,
    make_config,
    pushed,
    pushed_versions,
    write_jpeg_subset,
)

pytestmark = pytest.mark.e2e
N_TRAIN = 240
# Chance rsum of 60 images x 5 captions is about 53 (R@1/5/10 of 5/300, 25/300, 50/300, x2).
MIN_BYTES_RSUM = 150.0
# The float backbone and the quantized TFLite featurizer differ by a few quantization steps.
MAX_RSUM_SKEW = 10.0


def _dev_captions(flickr8k_dir: pathlib.Path, dev: list[str]) -> tuple[list[str], list[str]]:
    """(caption texts, their image names) of the dev images."""
    keep, texts, owners = set(dev), [], []
    for line in (flickr8k_dir / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines():
        key, _, text = line.partition("\t")
        if key.split("#", 1)[0] in keep:
            texts.append(text)
            owners.append(key.split("#", 1)[0])
    return texts, owners


def _featurizer_rows(nodes: dict, names: list[str]) -> np.ndarray:
    """The featurizer artifact's feature rows of ``names``."""
    from components.image_featurizer import outputs

    artifact = next(iter(nodes["ImageFeaturizer"].outputs.values()))[0]
    stem = mlmd_summary.custom_property(artifact, "features_name")
    all_names, matrix, _ = outputs.read_outputs(artifact.uri, stem)
    row = {name: i for i, name in enumerate(all_names)}
    return matrix[[row[name] for name in names]]


@pytest.fixture(scope="module")
def pushed_run(flickr8k_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("images_e2e")
    _, dev = write_jpeg_subset(flickr8k_dir, tmp / "data", N_TRAIN)
    config = config_lib.apply_overrides(
        make_config(tmp, tmp / "data"),
        [f"images_dir={flickr8k_dir / 'images'}", "eval.rsum_lower_bound=40"])
    assert run_lib.run(config) == 0
    nodes = last_run(config)
    assert blessed(nodes) and pushed(nodes)
    version = pushed_versions(config)[-1]
    return config, nodes, pathlib.Path(config.serving_dir) / config.model_name / version, dev


@pytest.mark.slow(minutes=7)
def test_pushed_embed_image_bytes_retrieves_captions_like_embed_image(pushed_run, flickr8k_dir):
    from serving.client import EmbeddingClient, LocalBackend
    from trainer.metrics import retrieval_metrics

    _, nodes, encoder_dir, dev = pushed_run
    client = EmbeddingClient(LocalBackend(str(encoder_dir)), batch_size=16)
    texts, owners = _dev_captions(flickr8k_dir, dev)
    text = client.embed_text(texts)
    from_bytes = client.embed_images([flickr8k_dir / "images" / name for name in dev])
    from_features = client.embed_image(_featurizer_rows(nodes, dev))
    bytes_metrics = retrieval_metrics(from_bytes, dev, text, owners)
    features_metrics = retrieval_metrics(from_features, dev, text, owners)
    print(f"rsum embed_image_bytes {bytes_metrics['rsum']:.1f}, "
          f"embed_image {features_metrics['rsum']:.1f}")
    assert bytes_metrics["rsum"] >= MIN_BYTES_RSUM
    assert abs(bytes_metrics["rsum"] - features_metrics["rsum"]) <= MAX_RSUM_SKEW


@pytest.mark.slow(minutes=1)
def test_search_image_finds_a_gallery_photo_itself(pushed_run, flickr8k_dir, capsys):
    from serving import search_cli

    config, _, _, dev = pushed_run
    photo = flickr8k_dir / "images" / dev[0]
    assert search_cli.main(["--image", str(photo), "--serving-dir", config.serving_dir,
                            "--model-name", config.model_name, "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"image2image query: image {photo}")
    assert lines[1].split()[2] == dev[0]
