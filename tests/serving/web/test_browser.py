"""The search page in a real browser (headless Chromium from Debian's packages, via Playwright),
against the service started with the documented command on a free 127.0.0.1 port.

Chromium is looked up on PATH (Playwright's own browser download is not used). Where it is
missing, the tests fail when ``CI`` or ``XMODAL_REQUIRE_BROWSER`` is set (``.ci/run`` installs
Chromium and sets the latter), and are skipped elsewhere, saying how to install it: a developer
machine without a browser can still run the rest of the suite.
"""

import base64
import http.client
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks.serve_load import free_port, stop_service, wait_healthy
from serving.client import EmbeddingClient, LocalBackend
from tests import images
from tests.serving.web import gallery
from tests.serving.web.conftest import COMPARE_MODEL, MODEL

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "apt-get install -y chromium"


def chromium_or_skip() -> str:
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("CI") or os.environ.get("XMODAL_REQUIRE_BROWSER"):
        pytest.fail(f"the browser tests need Chromium on PATH and it is missing: {INSTALL}")
    pytest.skip(f"Chromium is not installed ({INSTALL}); CI installs it and runs these tests")


@pytest.fixture(scope="module")
def service(pushed, tmp_path_factory):
    """``python -m pipeline serve`` on a free port; yields its base URL."""
    chromium_or_skip()
    port, log = free_port(), tmp_path_factory.mktemp("serve") / "service.log"
    command = [sys.executable, "-m", "pipeline", "serve", "--port", str(port), "--serving-dir",
               str(pushed / "serving"), "--model-name", MODEL, "--compare", COMPARE_MODEL,
               "--photos", str(pushed / "photos")]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_healthy(process, port, log, timeout_s=240)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_service(process)


@pytest.fixture(scope="module")
def page(service):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(service)
        yield page
        browser.close()


def wait_until(page, function: str, arg=None, timeout_s: float = 30.0) -> None:
    """Polls ``function`` in the page until it is true (``page.wait_for_function`` evaluates
    strings with ``eval``, which the page's Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(function, arg):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {function}"
        time.sleep(0.1)


def thumbnails_loaded(page, selector: str) -> None:
    wait_until(page, "(s) => { const imgs = [...document.querySelectorAll(s)];"
               " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
               selector)


def first_result_is(page, image_id: str, mode: str) -> None:
    """Waits for the answer of a ``mode`` query, then checks its first result."""
    wait_until(page, "(mode) => document.getElementById('status').textContent.includes(mode)",
               mode)
    assert page.locator("#results .card").first.get_attribute("data-id") == image_id


def test_a_typed_caption_shows_thumbnails_with_the_expected_first_result(page, pushed):
    query = "a black dog in the water"
    encoder = EmbeddingClient(LocalBackend(str(pushed / "serving" / MODEL / "1")))
    photos = encoder.embed_images([(pushed / "photos" / n).read_bytes() for n in gallery.PHOTO_IDS])
    expected = gallery.PHOTO_IDS[int(np.argmax(photos @ encoder.embed_text([query])[0]))]
    page.fill("#query", query)
    page.click("#text-form button[type=submit]")
    page.wait_for_selector("#results .card")
    thumbnails_loaded(page, "#results img")
    cards = page.locator("#results .card")
    assert cards.count() == len(gallery.PHOTO_IDS)
    assert cards.first.get_attribute("data-id") == expected
    assert page.locator("#model-info").inner_text().startswith(f"{MODEL} version 1")


def test_a_caption_with_a_script_tag_is_shown_as_text(page):
    page.fill("#query", "a red ball in the snow")
    page.click("#text-form button[type=submit]")
    card = page.locator("#results .card[data-id='photo5.jpg']")
    card.wait_for()
    assert card.locator(".caption").inner_text() == gallery.SCRIPT_CAPTION
    assert page.locator("#results script").count() == 0
    assert page.evaluate("window.__xss") is None


def test_an_uploaded_photo_is_ranked_first(page, pushed):
    page.set_input_files("#photo", str(pushed / "photos" / "photo3.jpg"))
    first_result_is(page, "photo3.jpg", "image2image")
    thumbnails_loaded(page, "#results img.thumb")
    assert page.locator("#error").is_hidden()


def test_a_dropped_photo_is_searched(page, pushed):
    data = base64.b64encode((pushed / "photos" / "photo1.jpg").read_bytes()).decode()
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'dropped.jpg', {type: 'image/jpeg'}));
        document.getElementById('drop-zone').dispatchEvent(
            new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", data)
    first_result_is(page, "photo1.jpg", "image2image")


def test_a_corrupt_photo_shows_an_error_message(page):
    page.set_input_files("#photo", files=[{"name": "broken.jpg", "mimeType": "image/jpeg",
                                           "buffer": images.corrupt_jpeg()}])
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert error.inner_text() == "photo: the image data is corrupt and cannot be decoded"
    assert page.locator("#results .card").count() == 0


def test_the_compare_view_shows_both_models_with_s_and_r(page):
    page.click("#tab-search")
    page.fill("#query", "two girls on the grass")
    page.click("#text-form button[type=submit]")
    page.locator("#results .card[data-id='photo1.jpg'] button.link").click()
    page.wait_for_selector("#compare-results .panel .strip")
    panels = page.locator("#compare-results .panel:not(.panel-header)")
    assert panels.count() == 1 + len(gallery.CAPTIONS["photo1.jpg"])
    titles = page.locator("#compare-results .column-title").all_inner_texts()
    assert titles == [f"{MODEL} v1", f"{COMPARE_MODEL} v1"]
    assert panels.nth(0).locator(".strip").count() == 2
    assert panels.nth(0).locator(".sr").first.inner_text().startswith("S ")
    assert " R " in panels.nth(1).locator(".sr").first.inner_text()
    thumbnails_loaded(page, "#compare-results img")


def test_a_raw_dot_dot_path_over_the_socket_is_refused(service):
    port = int(service.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", f"/images/../serving/{MODEL}/1/saved_model.pb")
    answer = connection.getresponse()
    assert answer.status == 400
    assert b"not a plain relative path" in answer.read()


def test_missing_chromium_fails_where_the_browser_tests_are_required(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", None)
    monkeypatch.setenv("XMODAL_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="need Chromium on PATH"):
        chromium_or_skip()
    monkeypatch.delenv("XMODAL_REQUIRE_BROWSER")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium_or_skip()
