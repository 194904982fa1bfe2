import json
import re

import numpy as np
import pytest
import tensorflow as tf

from serving.client import EmbeddingClient, LocalBackend
from serving.gallery import (
    GalleryIndex,
    build_index,
    check_model_version,
    load_index,
    save_index,
)
from serving.gallery_sources import read_captions_file, read_examples, read_features_file
from serving.search import GallerySearcher, chunked_top_k
from tests.serving.conftest import FEATURE_DIM
from tests.serving.raw_examples import write_examples


def test_chunked_top_k_hand_computed_and_chunk_invariant():
    gallery = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0], [0.8, 0.6]])
    queries = tf.constant([[1.0, 0.0], [0.0, -1.0]])
    # query 0 scores: 1, 0, .6, -1, .8 ; query 1 scores: 0, -1, -.8, 0, -.6 (tie 0 vs 3)
    for chunk in (1, 2, 3, 5, 100):
        scores, indices = chunked_top_k(queries, gallery, k=3, chunk_size=chunk)
        assert indices.numpy().tolist() == [[0, 4, 2], [0, 3, 4]], chunk
        np.testing.assert_allclose(scores.numpy(), [[1.0, 0.8, 0.6], [0.0, 0.0, -0.6]],
                                   atol=1e-6)
    scores, indices = chunked_top_k(queries, gallery, k=10, chunk_size=2)
    assert indices.shape == (2, 5)  # k clamped to N


def test_chunked_top_k_matches_full_sort_on_random_data():
    rng = np.random.default_rng(1)
    gallery = rng.normal(size=(1000, 16)).astype(np.float32)
    queries = rng.normal(size=(7, 16)).astype(np.float32)
    _, indices = chunked_top_k(tf.constant(queries), tf.constant(gallery), 10, chunk_size=128)
    expected = np.argsort(-(queries @ gallery.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(indices.numpy(), expected)


def test_chunked_top_k_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive size"):
        chunked_top_k(tf.ones([1, 2]), tf.ones([0, 2]), 1)
    with pytest.raises(ValueError, match="k and chunk_size"):
        chunked_top_k(tf.ones([1, 2]), tf.ones([3, 2]), 0)


def _unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _index(**overrides):
    fields = dict(
        model_name="m", model_version=3, image_ids=np.array(["a", "b"]),
        image_captions=np.array(["cap a", "cap b"]), image_embeddings=_unit([[1, 0], [0, 1]]),
        caption_ids=np.array(["a#0"]), caption_texts=np.array(["cap a"]),
        caption_image_ids=np.array(["a"]), caption_embeddings=_unit([[1, 1]]), source="test")
    fields.update(overrides)
    return GalleryIndex(**fields)


def test_index_round_trip_and_documented_files(tmp_path):
    save_index(_index(), str(tmp_path))
    metadata = json.loads((tmp_path / "index.json").read_text())
    assert metadata == {"format": "xmodal-gallery-index", "format_version": 1,
                        "model_name": "m", "model_version": 3, "embedding_dim": 2,
                        "num_images": 2, "num_captions": 1, "source": "test"}
    assert np.load(tmp_path / "image_ids.npy").dtype.kind == "U"
    loaded = load_index(str(tmp_path))
    assert loaded.image_ids.tolist() == ["a", "b"]
    np.testing.assert_allclose(loaded.caption_embeddings, _unit([[1, 1]]))
    check_model_version(loaded, "m", 3)
    with pytest.raises(ValueError, match="built with m version 3, not m version 4"):
        check_model_version(loaded, "m", 4)


def test_index_with_no_captions_round_trips(tmp_path):
    empty = dict(caption_ids=np.array([], str), caption_texts=np.array([], str),
                 caption_image_ids=np.array([], str),
                 caption_embeddings=np.zeros((0, 2), np.float32))
    save_index(_index(**empty), str(tmp_path))
    assert load_index(str(tmp_path)).caption_embeddings.shape == (0, 2)


def test_newer_or_foreign_format_is_refused(tmp_path):
    save_index(_index(), str(tmp_path))
    meta = json.loads((tmp_path / "index.json").read_text())
    (tmp_path / "index.json").write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(ValueError, match="format_version 2 is not supported"):
        load_index(str(tmp_path))
    (tmp_path / "index.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ValueError, match="format is 'other'"):
        load_index(str(tmp_path))


@pytest.mark.parametrize("name", ["image_ids", "caption_embeddings"])
def test_a_pickled_or_broken_array_is_refused_naming_its_file(tmp_path, name):
    save_index(_index(), str(tmp_path))
    path = tmp_path / f"{name}.npy"
    np.save(path, np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: not a plain .npy array "
                                         r"\(.*allow_pickle=False.*never pickled objects$"):
        load_index(str(tmp_path))
    path.write_bytes(path.read_bytes()[:20])  # cut off inside its header
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: not a plain .npy array"):
        load_index(str(tmp_path))


def test_a_broken_index_json_is_refused_naming_it(tmp_path):
    save_index(_index(), str(tmp_path))
    for text in ('{"format": ', "[1, 2]"):
        (tmp_path / "index.json").write_text(text)
        with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / 'index.json'))}: "):
            load_index(str(tmp_path))


def test_read_features_file_refuses_a_pickled_matrix_naming_it(tmp_path):
    np.save(tmp_path / "f.npy", np.array([[1.0], None], dtype=object), allow_pickle=True)
    (tmp_path / "names.txt").write_text("a.jpg\nb.jpg\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / 'f.npy'))}: not a plain"):
        read_features_file(str(tmp_path / "f.npy"), str(tmp_path / "names.txt"))


@pytest.mark.parametrize("overrides, message", [
    ({"image_embeddings": np.array([[2, 0], [0, 1]], np.float32)}, "row 0 is not a finite unit"),
    ({"image_ids": np.array(["a", "a"])}, "not unique"),
    ({"image_captions": np.array(["x"])}, "does not match 2 embeddings"),
    ({"image_embeddings": _unit([[1, 0], [0, 1]]).astype(np.float64)}, "must be float32"),
])
def test_inconsistent_index_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        _index(**overrides)


def test_read_examples_dedups_images_and_keeps_first_caption(tmp_path):
    one, two = [1.0] * FEATURE_DIM, [2.0] * FEATURE_DIM
    write_examples(tmp_path / "data.gz", [
        ("x.jpg", "x.jpg#1", "a dog on grass", one), ("y.jpg", "y.jpg#0", "two girls", two),
        ("x.jpg", "x.jpg#0", "a black dog", one)])
    records = read_examples(str(tmp_path / "*.gz"), batch_size=2)
    assert records.image_ids == ["x.jpg", "y.jpg"]
    assert records.image_captions == ["a black dog", "two girls"]
    np.testing.assert_array_equal(records.image_features, [one, two])
    assert records.caption_ids == ["x.jpg#1", "y.jpg#0", "x.jpg#0"]
    assert records.caption_image_ids == ["x.jpg", "y.jpg", "x.jpg"]


def test_read_examples_errors_name_the_record(tmp_path):
    write_examples(tmp_path / "a.gz",
                    [("x", "x#0", "c", [1.0, 2.0]), ("x", "x#1", "c", [1.0, 3.0])])
    with pytest.raises(ValueError, match=r"record 1: field image_features of image 'x' differs"):
        read_examples(str(tmp_path / "a.gz"))
    write_examples(tmp_path / "b.gz", [("x", "x#0", "c", [1.0, 2.0]), ("y", "y#1", "c", [1.0])])
    with pytest.raises(ValueError, match=r"record 1: .* has 1 values, earlier records 2"):
        read_examples(str(tmp_path / "b.gz"))
    with pytest.raises(ValueError, match="no TFRecord files match"):
        read_examples(str(tmp_path / "none-*"))


def test_read_features_file_with_split_and_captions(tmp_path):
    np.save(tmp_path / "f.npy", np.arange(6, dtype=np.float16).reshape(3, 2))
    (tmp_path / "names.txt").write_text("a.jpg\nb.jpg\nc.jpg\n")
    (tmp_path / "dev.txt").write_text("c.jpg\na.jpg\n")
    (tmp_path / "tok.txt").write_text("a.jpg#1\tsecond a\na.jpg#0\tfirst a\nb.jpg#0\tb\n")
    records = read_features_file(str(tmp_path / "f.npy"), str(tmp_path / "names.txt"),
                                 str(tmp_path / "tok.txt"), str(tmp_path / "dev.txt"))
    assert records.image_ids == ["c.jpg", "a.jpg"]
    np.testing.assert_array_equal(records.image_features, [[4, 5], [0, 1]])
    assert records.image_captions == ["", "first a"]
    assert records.caption_ids == ["a.jpg#1", "a.jpg#0"]
    (tmp_path / "bad.txt").write_text("a.jpg#0\tok\nno tab here\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'IMAGE#N<TAB>caption'"):
        read_captions_file(str(tmp_path / "bad.txt"))


def test_read_features_file_strips_a_bom_and_accepts_crlf(tmp_path):
    np.save(tmp_path / "f.npy", np.arange(4, dtype=np.float16).reshape(2, 2))
    bom = b"\xef\xbb\xbf"
    (tmp_path / "names.txt").write_bytes(bom + b"a.jpg\r\nb.jpg\r\n")
    (tmp_path / "dev.txt").write_bytes(bom + b"a.jpg\r\n")
    (tmp_path / "tok.txt").write_bytes(bom + "a.jpg#0\tfirst \u00e9\r\n".encode())
    records = read_features_file(str(tmp_path / "f.npy"), str(tmp_path / "names.txt"),
                                 str(tmp_path / "tok.txt"), str(tmp_path / "dev.txt"))
    assert records.image_ids == ["a.jpg"] and records.caption_ids == ["a.jpg#0"]
    assert records.caption_texts == ["first \u00e9"] and records.image_captions == ["first \u00e9"]


def test_build_and_search_with_the_toy_encoder(toy_model_dir, tmp_path):
    write_examples(tmp_path / "d.gz", [
        ("dog.jpg", "dog.jpg#0", "a dog runs on the beach", [0.0] * FEATURE_DIM),
        ("snow.jpg", "snow.jpg#0", "a man in the snow", [1.0] * FEATURE_DIM)])
    client = EmbeddingClient(LocalBackend(str(toy_model_dir)))
    index = build_index(read_examples(str(tmp_path / "d.gz")), client, "toy", 9)
    assert index.model_version == 9 and index.image_embeddings.shape == (2, 8)
    searcher = GallerySearcher(index, client, chunk_size=1)
    hits = searcher.text_to_captions(["a dog runs on the beach"], k=2)[0]
    assert [h.id for h in hits] == ["dog.jpg#0", "snow.jpg#0"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    same = searcher.image_to_images(np.full((1, FEATURE_DIM), 1.0), k=1)[0][0]
    assert (same.id, same.text) == ("snow.jpg", "a man in the snow")
    assert same.score == pytest.approx(1.0, abs=1e-5)
    text_hits = searcher.text_to_images(["a dog"], k=5)[0]
    expected = client.embed_text(["a dog"])[0] @ index.image_embeddings.T
    assert [h.id for h in text_hits] == [["dog.jpg", "snow.jpg"][i] for i in np.argsort(-expected)]
