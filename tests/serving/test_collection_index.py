"""Indexing a collection with the toy photo encoder: skips, search, re-indexing, model versions."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from tests import images
from tests.serving.collection_fixtures import push, write_bad_photos, write_photos

N_PHOTOS = 8


@pytest.fixture()
def serving(tmp_path, bytes_model_dir) -> pathlib.Path:
    push(tmp_path / "serving", bytes_model_dir, 1)
    return tmp_path / "serving"


def _build(serving: pathlib.Path, collection: pathlib.Path, name: str = "photos", **kwargs):
    from serving.collection.build import IndexRequest, build_index

    return build_index(IndexRequest(str(collection), name, str(serving), **kwargs))


def test_bad_photos_are_skipped_named_and_counted_and_every_good_one_is_found(serving, tmp_path):
    from serving.collection.api import open_index

    collection = tmp_path / "photos"
    ids = write_photos(collection, range(N_PHOTOS))
    reasons = write_bad_photos(collection)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("p0.jpg#0\ta red dog\np0.jpg#1\tthe dog runs\np2.jpg#0\ttwo dogs\n"
                      "absent.jpg#0\ta man\np1.jpg#0\t...\n", encoding="utf-8")
    manifest = _build(serving, collection, captions=str(tokens)).manifest

    assert {s["file"]: s["reason"] for s in manifest.skipped} == {**reasons, "p1.jpg#0": "no_word"}
    assert manifest.counts == {"listed": N_PHOTOS + len(reasons), "indexed": N_PHOTOS,
                               "embedded": N_PHOTOS, "reused": 0, "skipped": len(reasons),
                               "deleted": 0, "captions": 3, "captions_skipped": 1,
                               "captions_unmatched": 1}
    assert manifest.model_version == 1 and manifest.searchers["photos"]["kind"] == "brute_force"
    index = open_index(str(serving), "photos")
    assert index.photos.ids.tolist() == ids
    for photo_id in ids:
        best = index.search_image((collection / photo_id).read_bytes(), k=1)[0]
        assert (best.photo_id, best.path) == (photo_id, str(collection / photo_id))
        assert best.score == pytest.approx(1.0, abs=1e-5)
    assert index.caption_of("sub/p2.jpg") == "two dogs"
    best = index.search_text_to_text("a red dog", k=3)
    assert len(best) == 3 and (best[0].caption_id, best[0].photo_id) == ("p0.jpg#0", "p0.jpg")
    assert best[0].caption == "a red dog" and best[0].score == pytest.approx(1.0, abs=1e-5)
    assert {h.photo_id for h in index.search_text("a dog", k=N_PHOTOS)} == set(ids)


def test_reindexing_embeds_only_new_or_changed_photos_and_drops_deleted_ones(serving, tmp_path):
    from serving.collection import store

    collection = tmp_path / "photos"
    write_photos(collection, range(N_PHOTOS))
    first = _build(serving, collection)
    (collection / "p100.jpg").write_bytes(images.jpeg(100))
    os.remove(collection / "p0.jpg")
    second = _build(serving, collection)
    assert second.published and second.manifest.version > first.manifest.version
    counts = second.manifest.counts
    assert (counts["embedded"], counts["reused"], counts["deleted"]) == (1, N_PHOTOS - 1, 1)
    before, after = store.load_photos(first.directory), store.load_photos(second.directory)
    assert "p0.jpg" not in after.ids and "p100.jpg" in after.ids
    kept = np.isin(before.ids, after.ids)
    np.testing.assert_array_equal(before.embeddings[kept],
                                  after.embeddings[np.isin(after.ids, before.ids)])

    (collection / "p1.jpg").write_bytes(images.jpeg(101))  # same path, new content
    third = _build(serving, collection).manifest.counts
    assert (third["embedded"], third["reused"], third["deleted"]) == (1, N_PHOTOS - 1, 0)
    unchanged = _build(serving, collection)
    assert not unchanged.published
    assert sorted(os.listdir(serving / "collections" / "photos")) == sorted(
        [str(second.manifest.version), os.path.basename(unchanged.directory)])


def test_an_index_is_refused_with_another_model_version_and_says_how_to_rebuild(
        serving, tmp_path, bytes_model_dir):
    from serving.collection.api import StaleIndexError, open_index

    collection = tmp_path / "photos"
    write_photos(collection, range(3))
    _build(serving, collection, name="old")
    push(serving, bytes_model_dir, 2)  # retrain pushed a new version
    with pytest.raises(StaleIndexError, match="built with xmodal version 1, not xmodal version "
                       "2") as refused:
        open_index(str(serving), "old")
    assert refused.value.rebuild_command == (
        f"python -m pipeline index --collection {collection} --name old --serving-dir "
        f"{serving} --model-name xmodal")
    second = _build(serving, collection, name="new")
    assert (second.manifest.model_version, second.manifest.counts["embedded"]) == (2, 3)
    with pytest.raises(StaleIndexError, match="xmodal version 2, not xmodal version 1"):
        open_index(str(serving), "new", model_version=1)
    assert open_index(str(serving), "new").model_version == 2


def test_a_features_file_is_indexed_through_embed_image(tmp_path, toy_model_dir):
    from serving.collection.api import open_index
    from tests.serving.conftest import FEATURE_DIM

    serving = tmp_path / "serving"
    push(serving, toy_model_dir, 7)
    rows = np.random.default_rng(0).normal(size=(5, FEATURE_DIM)).astype(np.float32)
    rows[3, 2] = np.nan
    np.save(tmp_path / "feats.npy", rows)
    (tmp_path / "feats.names.txt").write_text("a.jpg\nb.jpg\nc.jpg\nd.jpg\ne.jpg\n")
    manifest = _build(serving, tmp_path / "feats.npy").manifest
    assert manifest.source_kind == "features"
    assert [(s["file"], s["reason"]) for s in manifest.skipped] == [("d.jpg", "non_finite")]
    index = open_index(str(serving), "photos")
    from serving.client import EmbeddingClient, LocalBackend

    query = EmbeddingClient(LocalBackend(str(serving / "xmodal" / "7"))).embed_image(rows[[4]])
    scores, found = index.search_embeddings(query, k=1)
    assert index.photos.ids[found[0, 0]] == "e.jpg" and scores[0, 0] == pytest.approx(1.0)
