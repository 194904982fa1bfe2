"""Collections to index: raw tf.Examples (one per caption) or an image features file.

Both readers return ``GalleryRecords``: one row per unique image (its features and the caption
with the smallest caption id, for display) and one row per caption.
"""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from trainer import features

_LENGTH = "image_features_length"
# UTF-8 that drops a leading byte-order mark (Windows editors write one): kept, it would glue
# onto the first image name or caption id, which then matches nothing. Text mode reads CRLF too.
TEXT_ENCODING = "utf-8-sig"


@dataclasses.dataclass(frozen=True)
class GalleryRecords:
    """Images and captions of one collection, before embedding.

    Attributes:
        image_ids: [N_i] unique image ids.
        image_captions: [N_i] display caption of each image ("" when it has none).
        image_features: float32 [N_i, D].
        caption_ids: [N_c] caption ids.
        caption_texts: [N_c] raw captions.
        caption_image_ids: [N_c] the image of each caption.
        source: where the records came from.

    """

    image_ids: list[str]
    image_captions: list[str]
    image_features: np.ndarray
    caption_ids: list[str]
    caption_texts: list[str]
    caption_image_ids: list[str]
    source: str


def _display_captions(image_ids: list[str], caption_ids: list[str], caption_texts: list[str],
                      caption_image_ids: list[str]) -> list[str]:
    """Per image, the text of its caption with the smallest id ("" when it has none)."""
    best: dict[str, tuple[str, str]] = {}
    for cid, text, iid in zip(caption_ids, caption_texts, caption_image_ids, strict=True):
        if iid not in best or cid < best[iid][0]:
            best[iid] = (cid, text)
    return [best.get(iid, ("", ""))[1] for iid in image_ids]


def _parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses serialized examples [B]; image features become dense [B, max D] + lengths [B]."""
    spec = {key: tf.io.FixedLenFeature([], tf.string)
            for key in (features.IMAGE_ID_KEY, features.CAPTION_ID_KEY, features.CAPTION_KEY)}
    spec[features.IMAGE_FEATURES_KEY] = tf.io.RaggedFeature(tf.float32)
    parsed = tf.io.parse_example(serialized, spec)
    ragged = parsed.pop(features.IMAGE_FEATURES_KEY)
    parsed[features.IMAGE_FEATURES_KEY] = ragged.to_tensor()
    parsed[_LENGTH] = ragged.row_lengths()
    return parsed


def read_examples(file_pattern: str, compression_type: str = "GZIP",
                  batch_size: int = 1024) -> GalleryRecords:
    """Reads raw caption tf.Examples (docs/architecture.md features) as gallery records.

    Images are de-duplicated by ``image_id`` (their feature rows must agree); every example
    becomes a caption row.

    Args:
        file_pattern: glob of TFRecord files, e.g. ``<examples>/Split-eval/*``.
        compression_type: ``"GZIP"`` (what ExampleGen writes) or ``""``.
        batch_size: examples parsed per step.

    Returns:
        The records, images in order of first appearance.

    Raises:
        ValueError: no files or no examples, or one image id with two different feature rows.

    """
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise ValueError(f"no TFRecord files match {file_pattern}")
    dataset = tf.data.TFRecordDataset(files, compression_type=compression_type)
    dataset = dataset.batch(batch_size).map(_parse)
    image_rows: dict[str, np.ndarray] = {}
    captions: tuple[list[str], list[str], list[str]] = ([], [], [])
    for batch in dataset.as_numpy_iterator():
        values, lengths = batch[features.IMAGE_FEATURES_KEY], batch[_LENGTH]
        for row, iid in enumerate(batch[features.IMAGE_ID_KEY]):
            image_id = iid.decode("utf-8")
            _add_image(image_rows, image_id, values[row, :lengths[row]], len(captions[0]),
                       file_pattern)
            captions[0].append(batch[features.CAPTION_ID_KEY][row].decode("utf-8"))
            captions[1].append(batch[features.CAPTION_KEY][row].decode("utf-8"))
            captions[2].append(image_id)
    if not captions[0]:
        raise ValueError(f"no examples in {file_pattern}")
    image_ids = list(image_rows)
    logging.info("read %d examples of %d images from %s", len(captions[0]), len(image_ids),
                 file_pattern)
    return GalleryRecords(image_ids, _display_captions(image_ids, *captions),
                          np.stack([image_rows[i] for i in image_ids]).astype(np.float32),
                          *captions, source=file_pattern)


def _add_image(rows: dict[str, np.ndarray], image_id: str, value: np.ndarray, record: int,
               where: str) -> None:
    """Records the features of ``image_id`` once; a different width or later row is an error."""
    width = len(next(iter(rows.values()))) if rows else len(value)
    if len(value) != width:
        raise ValueError(f"{where}: record {record}: field {features.IMAGE_FEATURES_KEY} of "
                         f"image {image_id!r} has {len(value)} values, earlier records {width} "
                         "(rule: fixed length D)")
    if image_id not in rows:
        rows[image_id] = value
    elif not np.array_equal(rows[image_id], value):
        raise ValueError(f"{where}: record {record}: field {features.IMAGE_FEATURES_KEY} of "
                         f"image {image_id!r} differs from its earlier record (rule: one "
                         "feature row per image)")


def read_captions_file(path: str) -> dict[str, list[tuple[str, str]]]:
    """Reads a Flickr8k ``IMAGE.jpg#N<TAB>caption`` file into image id → [(caption id, text)].

    Raises:
        ValueError: a line without a tab or without ``#`` in its id (file and line named).

    """
    by_image: dict[str, list[tuple[str, str]]] = {}
    with open(path, encoding=TEXT_ENCODING) as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            caption_id, tab, text = line.partition("\t")
            image_id, hash_sign, _ = caption_id.partition("#")
            if not tab or not hash_sign:
                raise ValueError(f"{path}:{number}: expected 'IMAGE#N<TAB>caption', got {line!r}")
            by_image.setdefault(image_id, []).append((caption_id, text))
    return by_image


def load_array(path: str) -> np.ndarray:
    """One plain ``.npy`` array; pickled object arrays are refused, never unpickled.

    Raises:
        ValueError: naming ``path``: the file holds pickled data (an object array) or is not a
            readable ``.npy`` file (truncated, another format).
        FileNotFoundError: ``path`` does not exist.

    """
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a plain .npy array ({err}); these arrays hold numbers "
                         "or strings, never pickled objects") from err


def read_features_file(features_path: str, names_path: str, captions_path: str | None = None,
                       image_list_path: str | None = None) -> GalleryRecords:
    """Reads an image features matrix (``.npy`` [N, D] + one name per line) as gallery records.

    Args:
        features_path: ``.npy`` matrix, row i = image named on line i of ``names_path``.
        names_path: image names, one a line.
        captions_path: optional ``IMAGE#N<TAB>caption`` file for display and caption search.
        image_list_path: optional file of image names to keep (e.g. the dev split).

    Returns:
        The records (images in ``names_path`` order).

    Raises:
        ValueError: row/name count mismatch, or a listed image absent from the features.

    """
    matrix = load_array(features_path)
    with open(names_path, encoding=TEXT_ENCODING) as f:
        names = [line.strip() for line in f if line.strip()]
    if matrix.ndim != 2 or matrix.shape[0] != len(names):
        raise ValueError(f"{features_path} has shape {matrix.shape} but {names_path} names "
                         f"{len(names)} images")
    rows = {name: i for i, name in enumerate(names)}
    if image_list_path is not None:
        with open(image_list_path, encoding=TEXT_ENCODING) as f:
            keep = [line.strip() for line in f if line.strip()]
        missing = [name for name in keep if name not in rows]
        if missing:
            raise ValueError(f"{image_list_path}: {len(missing)} images not in {names_path}, "
                             f"first {missing[0]!r}")
        names = keep
    by_image = read_captions_file(captions_path) if captions_path else {}
    pairs = [(cid, text, name) for name in names for cid, text in by_image.get(name, [])]
    caption_ids, texts, caption_image_ids = (list(c) for c in zip(*pairs, strict=True)) \
        if pairs else ([], [], [])
    return GalleryRecords(
        names, _display_captions(names, caption_ids, texts, caption_image_ids),
        matrix[[rows[n] for n in names]].astype(np.float32), caption_ids, texts,
        caption_image_ids, source=features_path)
