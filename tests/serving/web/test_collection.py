"""``serve --index NAME``: the service over a collection index instead of the eval gallery."""

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.client import EmbeddingClient, LocalBackend
from serving.collection.build import IndexRequest, build_index
from serving.web import cli
from serving.web.app import create_app
from tests.serving.web import gallery
from tests.serving.web.conftest import COMPARE_MODEL, MODEL

INDEX = "photos"


@pytest.fixture(scope="module")
def collection(pushed, tmp_path_factory):
    """A copy of the serving folder with index ``photos`` over the gallery photos + captions."""
    root = tmp_path_factory.mktemp("collection")
    shutil.copytree(pushed / "serving", root / "serving")
    photos = gallery.write_photos(root / "trip")
    captions = root / "captions.txt"
    captions.write_text("".join(f"{name}#{i}\t{text}\n" for name in gallery.PHOTO_IDS
                                for i, text in enumerate(gallery.CAPTIONS[name])))
    build_index(IndexRequest(str(photos), INDEX, str(root / "serving"), MODEL, str(captions)))
    return root


@pytest.fixture(scope="module")
def service(collection):
    return cli.build_service(cli._parser().parse_args(
        ["--serving-dir", str(collection / "serving"), "--model-name", MODEL, "--index", INDEX,
         "--poll-seconds", "0.2"]))


@pytest.fixture(scope="module")
def api(service):
    with TestClient(create_app(service)) as client:
        yield client


def test_healthz_names_the_collection(api):
    body = api.get("/api/healthz").json()
    assert body["source"] == f"collection {INDEX}"
    assert (body["images"], body["captions"], body["model_version"]) == (6, 12, 1)


def test_text_query_ranks_the_collection_by_cosine(api, collection):
    encoder = EmbeddingClient(LocalBackend(str(collection / "serving" / MODEL / "1")))
    query = "a man in the street"
    photos = encoder.embed_images([(collection / "trip" / n).read_bytes()
                                   for n in gallery.PHOTO_IDS])
    order = np.argsort(-(photos @ encoder.embed_text([query])[0]), kind="stable")
    body = api.get("/api/search", params={"q": query, "k": 3}).json()
    assert [r["id"] for r in body["results"]] == [gallery.PHOTO_IDS[i] for i in order[:3]]
    assert body["results"][0]["thumbnail"] == f"/images/{body['results'][0]['id']}"


def test_photo_and_caption_modes_over_the_collection(api, collection):
    photo = (collection / "trip" / "photo2.jpg").read_bytes()
    answer = api.post("/api/search/image", files={"photo": ("q.jpg", photo)}).json()
    assert answer["results"][0]["id"] == "photo2.jpg"
    answer = api.post("/api/search/image", params={"mode": "image2text", "k": 2},
                      files={"photo": ("q.jpg", photo)}).json()
    assert all(r["image"] in gallery.PHOTO_IDS for r in answer["results"])
    first = api.get("/api/search", params={"q": "two dogs on the grass", "mode": "text2text"})
    assert first.json()["results"][0]["id"] == "photo4.jpg#1"
    assert api.get("/images/photo2.jpg").status_code == 200
    assert api.get("/images/other.jpg").status_code == 404


def test_a_rebuilt_index_is_served_without_a_restart(api, service, collection):
    extra = collection / "trip" / "photo6.jpg"
    extra.write_bytes(gallery.photo(6))
    build_index(IndexRequest(str(collection / "trip"), INDEX, str(collection / "serving"), MODEL,
                             str(collection / "captions.txt")))
    assert service.primary.refresh().index.image_ids.tolist()[-1] == "photo6.jpg"
    answer = api.post("/api/search/image", files={"photo": ("q.jpg", extra.read_bytes())})
    assert answer.json()["results"][0]["id"] == "photo6.jpg"


def test_index_and_compare_together_are_refused(collection, capsys):
    assert cli.main(["--serving-dir", str(collection / "serving"), "--index", INDEX,
                     "--compare", COMPARE_MODEL]) == 2
    assert "--compare works on the eval-split gallery" in capsys.readouterr().err


def test_a_missing_index_is_one_error_line(collection, capsys):
    assert cli.main(["--serving-dir", str(collection / "serving"), "--model-name", MODEL,
                     "--index", "nothere"]) == 2
    assert "no collection index 'nothere'; build it with: python -m pipeline index" in \
        capsys.readouterr().err
