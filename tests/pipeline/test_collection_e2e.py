"""A real run pushes an encoder and re-indexes a collection; the indexes answer as the model does.

One pipeline run on Flickr8k (features in, eval split = the 1,000 dev images) with
``index.collection`` set to the 300 shared JPEGs and their captions, so the run's own re-index
hook builds that index. Then:

* every caption of the 300 photos finds its photo in the index's top 10 at least as often as an
  exact scan of the same embeddings does, and each photo finds itself first (>= 295 of 300);
* the 1,000 dev photos, indexed from their JPEGs through the served backbone, give a
  text→image R@10 within 1.5 points of the Evaluator's ``t2i_r10`` (precomputed features).

Slow (a whole pipeline run, then 1,300 photos through MobileNetV2); CI runs it.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from pipeline import config as config_lib
from pipeline import run as run_lib
from tests.pipeline.test_e2e import blessed, candidate_metrics, last_run, make_config, pushed

pytestmark = pytest.mark.e2e
SHARED_INDEX = "shared300"
MIN_SELF_FIRST = 295
MAX_R10_GAP = 1.5


def _recall_at_10(queries: np.ndarray, owners: np.ndarray, rows: np.ndarray,
                  photo_ids: np.ndarray) -> float:
    """Percent of queries whose owner photo is among the 10 best rows (exact scan)."""
    scores = queries @ rows.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return 100.0 * float(np.mean([owner in photo_ids[row] for owner, row in
                                  zip(owners, top, strict=True)]))


@pytest.fixture(scope="module")
def indexed_run(flickr8k_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collection_e2e")
    tokens = flickr8k_dir / "Flickr8k.token.txt"
    config = config_lib.apply_overrides(make_config(tmp, flickr8k_dir), [
        f"index.collection={flickr8k_dir / 'images'}", f"index.captions={tokens}",
        f"index.name={SHARED_INDEX}"])
    assert run_lib.run(config) == 0
    nodes = last_run(config)
    assert blessed(nodes) and pushed(nodes)
    return config, nodes, tokens


@pytest.mark.slow(minutes=12)
def test_the_run_indexes_the_shared_photos_and_the_index_finds_them(indexed_run):
    from pipeline.reindex import pushed_version
    from serving.collection.api import open_index

    config, nodes, _ = indexed_run
    index = open_index(config.serving_dir, SHARED_INDEX)  # published by the run's hook
    assert index.model_version == pushed_version(nodes)
    assert index.manifest.counts["indexed"] == 300 and index.manifest.skipped == []
    assert index.manifest.counts["captions"] == 1500
    captions = index.captions
    found = [captions.photo_ids[i] in {h.photo_id for h in index.search_text(text, k=10)}
             for i, text in enumerate(captions.texts.tolist())]
    by_index = 100.0 * float(np.mean(found))
    exact = _recall_at_10(np.asarray(captions.embeddings), captions.photo_ids,
                          np.asarray(index.photos.embeddings), index.photos.ids)
    print(f"300 shared photos: caption -> photo R@10 {by_index:.2f} (exact scan {exact:.2f})")
    assert by_index >= exact
    photos = pathlib.Path(index.collection)
    self_first = sum(index.search_image((photos / photo_id).read_bytes(), k=1)[0].photo_id
                     == photo_id for photo_id in index.photos.ids.tolist())
    print(f"300 shared photos: {self_first} find themselves first")
    assert self_first >= MIN_SELF_FIRST


@pytest.mark.slow(minutes=4)
def test_dev_photos_indexed_from_jpegs_match_the_evaluators_text_to_image_recall(
        indexed_run, flickr8k_dir):
    from serving.collection.api import open_index
    from serving.collection.build import IndexRequest, build_index

    config, nodes, tokens = indexed_run
    built = build_index(IndexRequest(str(flickr8k_dir / "dev_images"), "dev1000",
                                     config.serving_dir, config.model_name, str(tokens)))
    assert built.manifest.counts["indexed"] == 1000 and built.manifest.counts["captions"] == 5000
    index = open_index(config.serving_dir, "dev1000")
    captions = index.captions
    queries = np.asarray(captions.embeddings)
    _, rows = index.search_embeddings(queries, k=10)
    by_index = 100.0 * float(np.mean([owner in index.photos.ids[row] for owner, row in
                                      zip(captions.photo_ids, rows, strict=True)]))
    evaluator = candidate_metrics(nodes)["t2i_r10"]
    print(f"dev 1,000: t2i R@10 over the index {by_index:.2f}, Evaluator {evaluator:.2f}")
    assert abs(by_index - evaluator) <= MAX_R10_GAP
