"""A small synthetic caption dataset in the Flickr layout, learnable by a retrieval model.

Each image belongs to a cluster; its features are the cluster's centroid plus noise, and its
captions name the cluster's colour and object (plus uninformative filler words), so a model that
learns the cluster from either side retrieves well above chance. Used when ``../shared`` is absent
and by end-to-end tests.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from components.caption_example_gen.detect import detect
from components.caption_example_gen.spec import DatasetSpec

PREFIX = "synthetic"
_OBJECTS = ("dog", "cat", "bicycle", "boat", "horse", "car", "bird", "child", "tree", "train")
_COLOURS = ("red", "blue", "green", "yellow", "black", "white", "brown", "orange")
_VERBS = ("is standing", "is shown", "appears", "waits", "is seen", "rests")
_PLACES = ("near the water", "on the street", "in a park", "by a house", "in the snow", "outside")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the generated dataset.

    Attributes:
      num_images: images in total (split into train/eval/test by the fractions).
      captions_per_image: captions per image (ids ``IMAGE.jpg#0..n-1``).
      feature_dim: D of the image features.
      num_clusters: distinct (colour, object) concepts.
      noise: standard deviation of the per-image noise around a unit-norm-ish centroid.
      eval_fraction: share of images in ``eval``.
      test_fraction: share of images in ``test`` (0 writes no test list).
      seed: NumPy seed; the same config writes identical files.

    """

    num_images: int = 120
    captions_per_image: int = 5
    feature_dim: int = 32
    num_clusters: int = 8
    noise: float = 0.3
    eval_fraction: float = 0.25
    test_fraction: float = 0.0
    seed: int = 0


def _caption(rng: np.random.Generator, cluster: int) -> str:
    colour = _COLOURS[cluster % len(_COLOURS)]
    thing = _OBJECTS[(cluster // len(_COLOURS) + cluster) % len(_OBJECTS)]
    return f"A {colour} {thing} {rng.choice(_VERBS)} {rng.choice(_PLACES)} ."


def _split_lists(names: list[str], config: SyntheticConfig, rng: np.random.Generator) -> dict:
    order = [names[i] for i in rng.permutation(len(names))]
    n_eval = max(1, round(config.eval_fraction * len(names)))
    n_test = round(config.test_fraction * len(names))
    lists = {"devImages": order[:n_eval], "trainImages": order[n_eval + n_test :]}
    if n_test:
        lists["testImages"] = order[n_eval : n_eval + n_test]
    return lists


def _write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))


def write_synthetic_dataset(out_dir: str, config: SyntheticConfig | None = None) -> DatasetSpec:
    """Writes a Flickr-layout dataset into ``out_dir`` and returns its detected DatasetSpec.

    Files: ``synthetic.token.txt`` (``IMAGE.jpg#N<TAB>caption``), ``synthetic.trainImages.txt``,
    ``synthetic.devImages.txt`` (and ``synthetic.testImages.txt``), ``features/synthetic.npy``
    (float16 [num_images, feature_dim]) with ``features/synthetic.names.txt``.
    """
    config = config or SyntheticConfig()
    if config.num_images < 4 or config.num_clusters < 2:
        raise ValueError(f"SyntheticConfig needs >= 4 images and >= 2 clusters: {config}")
    rng = np.random.default_rng(config.seed)
    names = [f"synth_{i:05d}.jpg" for i in range(config.num_images)]
    clusters = np.arange(config.num_images) % config.num_clusters
    centroids = rng.normal(size=(config.num_clusters, config.feature_dim))
    noise = config.noise * rng.normal(size=(config.num_images, config.feature_dim))
    features = centroids[clusters] / np.sqrt(config.feature_dim) * 3.0 + noise
    lines = [
        f"{name}#{n}\t{_caption(rng, int(cluster))}"
        for name, cluster in zip(names, clusters, strict=True)
        for n in range(config.captions_per_image)
    ]
    os.makedirs(os.path.join(out_dir, "features"), exist_ok=True)
    _write_lines(os.path.join(out_dir, f"{PREFIX}.token.txt"), lines)
    for list_name, members in _split_lists(names, config, rng).items():
        _write_lines(os.path.join(out_dir, f"{PREFIX}.{list_name}.txt"), members)
    np.save(os.path.join(out_dir, "features", f"{PREFIX}.npy"), features.astype(np.float16))
    _write_lines(os.path.join(out_dir, "features", f"{PREFIX}.names.txt"), names)
    return detect(out_dir)
