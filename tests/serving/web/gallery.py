"""A small pushed model for the search service's tests: six noise photos and their captions."""

import pathlib
import shutil

import numpy as np
import tensorflow as tf
from PIL import Image

from serving.client import EmbeddingClient, LocalBackend
from serving.gallery import GalleryIndex, build_index
from serving.gallery_sources import GalleryRecords
from serving.search_model import search_model_name, write_search_model
from tests import images

SCRIPT_CAPTION = "a <script>window.__xss = 1</script> red ball in the snow"
CAPTIONS = {
    "photo0.jpg": ["a dog runs on the beach", "a black dog in the water"],
    "photo1.jpg": ["two girls on the grass", "a girl and a boy on the grass"],
    "photo2.jpg": ["a man in the street", "a man and a woman in the street"],
    "photo3.jpg": ["a child in the snow", "a boy in the white snow"],
    "photo4.jpg": ["dogs running in the grass", "two dogs on the grass"],
    "photo5.jpg": [SCRIPT_CAPTION, "the red ball"],
}
PHOTO_IDS = sorted(CAPTIONS)


def photo(seed: int) -> bytes:
    """A 96x72 JPEG: noise over a colour of its own (plain noise photos all pool alike)."""
    rng = np.random.default_rng(seed)
    tint = rng.integers(0, 256, 3)
    pixels = 0.6 * tint + 0.4 * rng.integers(0, 256, (72, 96, 3))
    return images.encode(Image.fromarray(pixels.astype(np.uint8)), "JPEG", quality=90)


def photo_bytes() -> dict[str, bytes]:
    """Each gallery photo's JPEG (one seed per photo)."""
    return {name: photo(seed) for seed, name in enumerate(PHOTO_IDS)}


def write_photos(folder: pathlib.Path) -> pathlib.Path:
    """Writes the gallery photos into ``folder``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in photo_bytes().items():
        (folder / name).write_bytes(data)
    return folder


def publish(serving_dir: pathlib.Path, encoder_dir: pathlib.Path, model_name: str,
            version: int) -> GalleryIndex:
    """Publishes ``encoder_dir`` and its search model over the gallery as the Pusher lays them
    out; returns the index."""
    photos = photo_bytes()
    encoder = tf.saved_model.load(str(encoder_dir))
    image_features = encoder.image_features_from_bytes(
        tf.constant([photos[name] for name in PHOTO_IDS])).numpy()
    captions = [(f"{name}#{i}", text, name) for name in PHOTO_IDS
                for i, text in enumerate(CAPTIONS[name])]
    records = GalleryRecords(PHOTO_IDS, [CAPTIONS[name][0] for name in PHOTO_IDS],
                             image_features, [c[0] for c in captions], [c[1] for c in captions],
                             [c[2] for c in captions], source="test gallery")
    index = build_index(records, EmbeddingClient(LocalBackend(str(encoder_dir))), model_name,
                        version)
    shutil.copytree(encoder_dir, serving_dir / model_name / str(version))
    write_search_model(str(encoder_dir), index,
                       str(serving_dir / search_model_name(model_name) / str(version)), k=10)
    return index
