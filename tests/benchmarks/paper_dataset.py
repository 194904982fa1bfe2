"""A tiny generated dataset in Flickr8k's layout (token file, split lists, ``features/``).

Images belong to one of four colour classes: image and caption features are the class one-hot
plus noise and every caption names its colour, so retrieval is learnable at the class level.
"""

from __future__ import annotations

import pathlib

import numpy as np

COLOURS = ("red", "green", "blue", "yellow")
FILLERS = ("a dog runs", "two people sit", "a child plays on grass", "the man looks")
IMAGE_DIM, CAPTION_DIM, CAPTIONS_PER_IMAGE = 8, 6, 3


def write_dataset(folder: pathlib.Path, lists: dict[str, int], prefix: str, seed: int) -> None:
    """Writes a dataset whose split list ``name`` holds ``count`` images (``lists``).

    Image names are ``<prefix><i>_x.jpg``, numbered across the lists in order.
    """
    rng = np.random.default_rng(seed)
    (folder / "features").mkdir(parents=True, exist_ok=True)
    tokens, images, image_names, captions, caption_ids = [], [], [], [], []
    number = 0
    for list_name, count in lists.items():
        names = []
        for _ in range(count):
            name, label = f"{prefix}{number}_x.jpg", number % len(COLOURS)
            names.append(name)
            image_names.append(name)
            images.append(np.eye(IMAGE_DIM)[label] * 3 + rng.normal(0, 0.3, IMAGE_DIM))
            for n in range(CAPTIONS_PER_IMAGE):
                tokens.append(f"{name}#{n}\t{FILLERS[(number + n) % 4]} {COLOURS[label]} .")
                caption_ids.append(f"{name}#{n}")
                captions.append(np.eye(CAPTION_DIM)[label] + rng.normal(0, 0.3, CAPTION_DIM))
            number += 1
        (folder / list_name).write_text("\n".join(names) + "\n")
    (folder / "Flickr8k.token.txt").write_text("\n".join(tokens) + "\n")
    np.save(folder / "features" / "mobilenet_v2.npy", np.array(images, np.float16))
    (folder / "features" / "mobilenet_v2.names.txt").write_text("\n".join(image_names) + "\n")
    np.save(folder / "features" / "minilm_l6_v2.npy", np.array(captions, np.float16))
    (folder / "features" / "minilm_l6_v2.ids.txt").write_text("\n".join(caption_ids) + "\n")
