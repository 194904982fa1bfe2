"""The documented ``python -m pipeline serve`` commands, run as written from a working folder
laid out as a default run leaves it (``runs/serving/xmodal``, ``xmodal_fhn``, ``xmodal_hn``)."""

import json
import subprocess
import sys
import urllib.request

import pytest

from benchmarks.serve_load import free_port, stop_service, wait_healthy
from tests.serving.bytes_encoder import write_bytes_encoder
from tests.serving.web import gallery


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("workdir")
    for seed, name in enumerate(("xmodal", "xmodal_fhn", "xmodal_hn")):
        encoder = write_bytes_encoder(root / f"encoder-{name}", seed=seed)
        gallery.publish(root / "runs" / "serving", encoder, name, 1)
    return root


@pytest.mark.parametrize("extra, compare", [
    ([], None),
    (["--model-name", "xmodal_fhn", "--compare", "xmodal_hn"], "xmodal_hn"),
])
def test_documented_serve_commands_answer(workdir, extra, compare):
    # The docs bind port 8080; the test takes a free port so that it cannot meet a busy one.
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port",
                                    str(port), *extra], cwd=workdir, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = wait_healthy(process, port, log, timeout_s=240)
        assert health["model_version"] == 1
        assert (health["compare"] or {}).get("model_name") == compare
        url = f"http://127.0.0.1:{port}/api/search?q=a+dog+runs+on+the+beach&k=3"
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert len(json.loads(answer.read())["results"]) == 3
    finally:
        stop_service(process)
    assert f"serving http://127.0.0.1:{port}/" in log.read_text()
