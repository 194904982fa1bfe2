"""The search service's JSON API: every endpoint and mode, and the answers to bad inputs."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from serving.client import EmbeddingClient, LocalBackend
from serving.gallery import load_index
from serving.rouge import rouge_l
from serving.search_model import INDEX_SUBDIR
from serving.web import cli
from serving.web.app import create_app
from tests import images
from tests.serving.web import gallery
from tests.serving.web.conftest import COMPARE_MODEL, MODEL


def serve_args(root, *extra):
    return cli._parser().parse_args(["--serving-dir", str(root / "serving"), "--model-name",
                                     MODEL, "--photos", str(root / "photos"), *extra])


@pytest.fixture(scope="module")
def api(pushed):
    service = cli.build_service(serve_args(pushed, "--compare", COMPARE_MODEL))
    with TestClient(create_app(service)) as client:
        yield client


@pytest.fixture(scope="module")
def encoder(pushed):
    return EmbeddingClient(LocalBackend(str(pushed / "serving" / MODEL / "1")))


@pytest.fixture(scope="module")
def index(pushed):
    return load_index(str(pushed / "serving" / f"{MODEL}_search" / "1" / INDEX_SUBDIR))


def expected_order(scores):
    return list(np.argsort(-scores, kind="stable"))


def post_photo(api, data, **params):
    return api.post("/api/search/image", params=params,
                    files={"photo": ("query.jpg", data, "image/jpeg")})


def test_healthz_names_both_models_and_the_limits(api):
    body = api.get("/api/healthz").json()
    assert (body["status"], body["model_name"], body["model_version"]) == ("ok", MODEL, 1)
    assert (body["images"], body["captions"], body["source"]) == (6, 12, "eval-split gallery")
    assert body["compare"]["model_name"] == COMPARE_MODEL
    assert body["limits"]["max_k"] == 100


@pytest.mark.parametrize("query", ["a dog runs on the beach", "two girls", "snow"])
def test_text2image_ranks_by_the_encoder_s_cosine(api, encoder, index, query):
    answer = api.get("/api/search", params={"q": query, "k": 4})
    assert answer.status_code == 200
    body = answer.json()
    scores = index.image_embeddings @ encoder.embed_text([query])[0]
    order = expected_order(scores)[:4]
    assert [r["id"] for r in body["results"]] == [gallery.PHOTO_IDS[i] for i in order]
    np.testing.assert_allclose([r["score"] for r in body["results"]], scores[order], atol=1e-5)
    first = body["results"][0]
    assert first["caption"] == gallery.CAPTIONS[first["id"]][0]
    assert first["thumbnail"] == f"/images/{first['id']}"
    assert (body["mode"], body["model_version"]) == ("text2image", 1)


def test_text2text_finds_the_same_caption_first(api):
    body = api.get("/api/search", params={"q": "two dogs on the grass", "mode": "text2text",
                                          "k": 3}).json()
    first = body["results"][0]
    assert (first["id"], first["image"]) == ("photo4.jpg#1", "photo4.jpg")
    assert first["score"] == pytest.approx(1.0, abs=1e-5)
    assert len(body["results"]) == 3


@pytest.mark.parametrize("name", gallery.PHOTO_IDS)
def test_image2image_ranks_each_gallery_photo_first(api, pushed, name):
    body = post_photo(api, (pushed / "photos" / name).read_bytes(), k=3).json()
    assert body["results"][0]["id"] == name
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert body["mode"] == "image2image"


def test_image2text_ranks_captions_by_cosine(api, encoder, index):
    photo = gallery.photo(99)
    body = post_photo(api, photo, mode="image2text", k=5).json()
    scores = index.caption_embeddings @ encoder.embed_images([photo])[0]
    order = expected_order(scores)[:5]
    assert [r["id"] for r in body["results"]] == [index.caption_ids[i] for i in order]
    assert [r["caption"] for r in body["results"]] == [index.caption_texts[i] for i in order]


@pytest.mark.parametrize("params, message", [
    ({"q": ""}, "the query is empty"),
    ({"q": "   "}, "the query is empty"),
    ({"q": "x" * 501}, "more than the limit of 500"),
    ({"q": "dog", "k": 0}, "k must be between 1 and 100, got 0"),
    ({"q": "dog", "k": -3}, "k must be between 1 and 100, got -3"),
    ({"q": "dog", "k": 101}, "k must be between 1 and 100, got 101"),
    ({"q": "dog", "k": 10**30}, "k must be between 1 and 100"),
    ({"q": "dog", "k": "ten"}, "k: Input should be a valid integer"),
    ({"q": "dog", "mode": "image2image"}, "mode must be one of text2image, text2text"),
    ({"q": "dog", "mode": "nope"}, "mode must be one of text2image, text2text; got 'nope'"),
    ({"q": "?!"}, "the query cannot be searched"),
])
def test_bad_text_queries_are_400_with_a_message(api, params, message):
    answer = api.get("/api/search", params=params)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert list(answer.json()) == ["error"]


@pytest.mark.parametrize("data, status, message", [
    (images.corrupt_jpeg(), 400, "the image data is corrupt and cannot be decoded"),
    (images.truncated_jpeg(), 400, "truncated JPEG"),
    (b"", 400, "empty"),
    (b"GIF89a not a photo", 400, "not a JPEG or PNG"),
    (images.huge_jpeg(), 400, "too large"),
    (images.encode(Image.new("RGB", (6000, 5000)), "PNG"), 400, "pixels > max 25000000"),
])
def test_bad_photos_are_refused_with_a_message(api, data, status, message):
    answer = post_photo(api, data)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert "Traceback" not in answer.text and "/tmp" not in answer.text


def test_photo_over_the_upload_limit_is_413_before_it_is_read(api):
    answer = post_photo(api, b"\xff\xd8" + b"0" * (5 * 2**20))
    assert answer.status_code == 413
    assert "over the limit of" in answer.json()["error"]


def test_photo_requests_without_a_photo_or_with_a_text_mode_are_400(api):
    assert "multipart form field 'photo'" in api.post("/api/search/image").json()["error"]
    answer = post_photo(api, gallery.photo(0), mode="text2image")
    assert answer.status_code == 400
    assert "mode must be one of image2image, image2text" in answer.json()["error"]
    assert post_photo(api, gallery.photo(0), k=0).status_code == 400


def test_thumbnail_of_a_gallery_photo_is_a_small_jpeg(api):
    answer = api.get("/images/photo2.jpg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(answer.content)) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (96, 72)


@pytest.mark.parametrize("path, status, message", [
    ("/images/nope.jpg", 404, "unknown image id 'nope.jpg'"),
    ("/images/..%2Fserving%2Ftoy%2F1%2Fsaved_model.pb", 400, "not a plain relative path"),
    ("/images/photo0.jpg%2F..%2F..%2Fphotos%2Fphoto0.jpg", 400, "not a plain relative path"),
    ("/images/%2Fetc%2Fpasswd", 400, "not a plain relative path"),
    ("/images/..%5Cphoto0.jpg", 400, "backslashes"),
    ("/images/.%2Fphoto0.jpg", 400, "not a plain relative path"),
])
def test_image_ids_that_are_unknown_or_leave_the_folder_are_refused(api, path, status, message):
    answer = api.get(path)
    assert answer.status_code == status
    assert message in answer.json()["error"]


def test_photo_files_missing_unreadable_or_linked_out_of_the_folder(pushed, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "photo0.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    outside = tmp_path / "private.jpg"
    outside.write_bytes(gallery.photo(0))
    (folder / "photo2.jpg").symlink_to(outside)  # a link out of the folder is never read
    (folder / "photo4.jpg").write_bytes(gallery.photo(4))
    args = cli._parser().parse_args(["--serving-dir", str(pushed / "serving"), "--model-name",
                                     MODEL, "--photos", str(folder)])
    with TestClient(create_app(cli.build_service(args))) as client:
        missing = client.get("/images/photo1.jpg")
        assert missing.status_code == 404
        assert "no photo file of image 'photo1.jpg'" in missing.json()["error"]
        unreadable = client.get("/images/photo0.jpg")
        assert unreadable.status_code == 422
        assert "is not a readable image" in unreadable.json()["error"]
        assert client.get("/images/photo2.jpg").status_code == 404
        assert client.get("/images/photo4.jpg").status_code == 200
        results = client.get("/api/search", params={"q": "dog", "k": 6}).json()["results"]
        thumbnails = {r["id"]: r["thumbnail"] for r in results}
        assert thumbnails["photo1.jpg"] is None and thumbnails["photo2.jpg"] is None
        assert thumbnails["photo4.jpg"] == "/images/photo4.jpg"


def test_compare_image_query_has_the_paper_s_layout_with_s_and_r(api, encoder, index):
    body = api.get("/api/compare", params={"id": "photo1.jpg", "k": 3}).json()
    assert [m["model_name"] for m in body["models"]] == [MODEL, COMPARE_MODEL]
    captions = gallery.CAPTIONS["photo1.jpg"]
    assert body["query"]["captions"] == captions
    assert [p["query"].get("text") for p in body["panels"]] == [None, *captions]
    image_panel = body["panels"][0]["columns"][0]["results"]
    assert "photo1.jpg" not in [r["id"] for r in image_panel] and len(image_panel) == 3
    for result in image_panel:  # R: mean ROUGE-L of the query's captions to the result's
        expected = np.mean([rouge_l(c, gallery.CAPTIONS[result["id"]]) for c in captions])
        assert result["relevance"] == pytest.approx(expected, abs=1e-4)
    caption_panel = body["panels"][2]["columns"][0]["results"]
    scores = index.image_embeddings @ encoder.embed_text([captions[1]])[0]
    assert [r["id"] for r in caption_panel] == [gallery.PHOTO_IDS[i]
                                                for i in expected_order(scores)[:3]]
    for result in caption_panel:
        assert result["relevance"] == pytest.approx(
            rouge_l(captions[1], gallery.CAPTIONS[result["id"]]), abs=1e-4)
        assert result["score"] == pytest.approx(
            float(scores[gallery.PHOTO_IDS.index(result["id"])]), abs=1e-5)
    assert body["panels"][1]["columns"][1]["model_name"] == COMPARE_MODEL


def test_compare_text_query_is_one_panel_per_model(api):
    body = api.get("/api/compare", params={"q": "a dog in the water", "k": 2}).json()
    assert len(body["panels"]) == 1 and len(body["panels"][0]["columns"]) == 2
    assert all(len(c["results"]) == 2 for c in body["panels"][0]["columns"])


@pytest.mark.parametrize("params, status, message", [
    ({}, 400, "give exactly one of q"),
    ({"q": "dog", "id": "photo1.jpg"}, 400, "give exactly one of q"),
    ({"id": "nope.jpg"}, 404, "image id 'nope.jpg' is not in the eval-split gallery"),
    ({"q": ""}, 400, "the query is empty"),
    ({"id": "photo1.jpg", "k": 0}, 400, "k must be between"),
])
def test_bad_compare_queries(api, params, status, message):
    answer = api.get("/api/compare", params=params)
    assert answer.status_code == status
    assert message in answer.json()["error"]


def test_random_image_is_a_captioned_gallery_image(api):
    assert api.get("/api/random-image").json()["id"] in gallery.PHOTO_IDS


def test_unknown_routes_and_methods_are_json_and_pages_carry_security_headers(api):
    assert api.get("/api/nothing").json() == {"error": "Not Found"}
    answer = api.delete("/api/search")
    assert answer.status_code == 405 and "error" in answer.json()
    page = api.get("/")
    assert page.status_code == 200 and "<script src=\"/static/app.js\"" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert api.get("/static/app.js").status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN assets
