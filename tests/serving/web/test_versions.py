"""The service picks up newly pushed versions without a restart, in-process and via TF Serving."""

import shutil
import time

import pytest
from fastapi.testclient import TestClient

from benchmarks.bench_serve import push_again
from serving.client import LocalBackend
from serving.web import cli
from serving.web.app import create_app
from tests.serving.fake_servers import Script, start_rest
from tests.serving.web.conftest import MODEL


@pytest.fixture
def serving_copy(pushed, tmp_path):
    shutil.copytree(pushed / "serving", tmp_path / "serving")
    return tmp_path / "serving"


def service_for(serving_dir, photos, *extra):
    return cli.build_service(cli._parser().parse_args(
        ["--serving-dir", str(serving_dir), "--model-name", MODEL, "--photos", str(photos),
         "--poll-seconds", "0.2", *extra]))


def version_of(client):
    return client.get("/api/search", params={"q": "a dog"}).json()["model_version"]


def test_a_pushed_version_is_served_without_a_restart(pushed, serving_copy):
    with TestClient(create_app(service_for(serving_copy, pushed / "photos"))) as client:
        assert version_of(client) == 1
        new = push_again(serving_copy, MODEL)
        deadline = time.monotonic() + 30
        while version_of(client) != new and time.monotonic() < deadline:
            time.sleep(0.1)
        assert version_of(client) == new
        assert client.get("/api/healthz").json()["model_version"] == new
        assert client.get("/images/photo0.jpg").status_code == 200


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(pushed, serving_copy, caplog):
    service = service_for(serving_copy, pushed / "photos")
    broken = serving_copy / f"{MODEL}_search" / "5"
    shutil.copytree(serving_copy / f"{MODEL}_search" / "1", broken)
    (broken / "assets.extra" / "gallery" / "index.json").write_text("{}")
    shutil.copytree(serving_copy / MODEL / "1", serving_copy / MODEL / "5")
    assert service.primary.refresh().version == 1
    assert "toy_search version 5 not loaded (serving version 1)" in caplog.text
    assert service.primary.refresh().version == 1  # not retried at once
    assert caplog.text.count("version 5 not loaded") == 1


def test_tf_serving_queries_are_pinned_and_follow_its_version_switch(pushed, serving_copy):
    script = Script(LocalBackend(str(serving_copy / MODEL / "1")), feature_dim=8)
    server, url = start_rest(script)
    try:
        script.versions = {1}
        service = service_for(serving_copy, pushed / "photos", "--tf-serving", url)
        with TestClient(create_app(service)) as client:
            assert version_of(client) == 1
            assert script.requests[-1][1].endswith("/v1/models/toy/versions/1:predict")
            new = push_again(serving_copy, MODEL)
            assert service.primary.refresh().version == 1  # TF Serving does not serve it yet
            script.versions = {new}  # TF Serving switched: version 1 is gone
            answer = client.post("/api/search/image", files={
                "photo": ("q.jpg", (pushed / "photos" / "photo3.jpg").read_bytes())})
            assert answer.status_code == 200
            assert answer.json()["model_version"] == new
            assert answer.json()["results"][0]["id"] == "photo3.jpg"
            assert script.requests[-1][1].endswith(f"/v1/models/toy/versions/{new}:predict")
    finally:
        server.shutdown()


def test_serve_without_a_pushed_model_is_one_error_line(tmp_path, capsys):
    assert cli.main(["--serving-dir", str(tmp_path), "--model-name", "none"]) == 2
    assert "no pushed model; run the pipeline" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--port", "0"], "--port must be 1..65535"),
    (["--poll-seconds", "0"], "--poll-seconds must be > 0"),
    (["--tf-serving", "localhost:8501"], "--tf-serving must be an http:// or https:// URL"),
    (["--host", "my host"], "--host must be an IP address (or localhost)"),
])
def test_bad_serve_arguments_are_one_error_line(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
