import base64
import io
import math
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from components.eval_report import data, render, thumbnails

E0, E1 = np.eye(3)[:2]
DIAG = np.array([1.0, 1.0, 0.0]) / math.sqrt(2.0)


def _hand_embeddings():
    # Image A owns 5 captions, image B one (as in tests/trainer/test_metrics.py):
    # t2i ranks [1, 2, 1, 2, 2, 2] for captions A#0..A#4, B#0; i2t ranks A -> 1, B -> 4.
    text = np.stack([E0, E1, DIAG, E1, -E0, E0]).astype(np.float32)
    return data.EvalEmbeddings(
        caption_ids=("A#0", "A#1", "A#2", "A#3", "A#4", "B#0"),
        captions=("a zero", "a one", "a two", "a three", "a four", "b zero"),
        text_image_ids=("A", "A", "A", "A", "A", "B"), text=text,
        gallery=("A", "B"), image=np.stack([E0, E1]).astype(np.float32))


def test_recall_curves_hand_computed():
    curves = data.recall_curves(_hand_embeddings(), max_k=4)
    np.testing.assert_allclose(curves["t2i"], [100 / 3, 100, 100, 100])
    np.testing.assert_allclose(curves["i2t"], [50, 50, 50, 100])


def test_qualitative_top_images_and_hits():
    results = data.qualitative(_hand_embeddings(), num_queries=2, top=1)
    assert [r.caption_id for r in results] == ["A#0", "B#0"]
    first, last = results
    assert first.top == (("A", "a zero", True),) and first.hit and first.truth_rank == 1
    # B#0 (= E0) prefers image A; B is at rank 2 and not shown with top=1.
    assert last.top == (("A", "a zero", False),) and not last.hit and last.truth_rank == 2


def test_render_html_escapes_and_shows_verdict():
    rows = [data.MetricRow("rsum", 250.0, 240.0, 10.0), data.MetricRow("t2i_r1", 12.5)]
    query = data.QueryResult("x#0", "a <b> dog", "x", 3, (("y", "cat & dog", False),))
    page = render.render_html(render.ReportPage("T", rows, False, ["rsum = 250 fails lower_bound"],
                                                b"PNG", [query]))
    assert "a &lt;b&gt; dog" in page and "cat &amp; dog" in page
    assert "<td>250.00</td><td>240.00</td><td>+10.00</td>" in page
    assert "<td>12.50</td><td>–</td><td>–</td>" in page
    assert "not blessed" in page and "ground truth at rank 3" in page


# --- thumbnails in the qualitative panel ---------------------------------------------------------

COLORS = {"red.jpg": (255, 0, 0), "green.png": (0, 160, 0), "blue.jpg": (0, 0, 255)}


def _images_folder(tmp_path):
    """Three solid-colour images (300x200), a corrupt and an empty file; "gone.jpg" is absent."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name, color in COLORS.items():
        Image.new("RGB", (300, 200), color).save(folder / name)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def _decode(uri: str) -> Image.Image:
    assert uri.startswith(thumbnails.DATA_URI_PREFIX)
    image = Image.open(io.BytesIO(base64.b64decode(uri[len(thumbnails.DATA_URI_PREFIX):])))
    image.load()
    return image


def test_thumbnail_is_a_small_jpeg_with_the_aspect_kept():
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (255, 0, 0)).save(buffer, format="PNG")
    image = _decode(thumbnails.thumbnail_uri(buffer.getvalue()))
    assert image.format == "JPEG" and image.size == (112, 75)  # 300x200 scaled by 112/300
    red, green, blue = image.getpixel((56, 37))
    assert red > 240 and green < 15 and blue < 15
    with pytest.raises(ValueError, match="not a readable image"):
        thumbnails.thumbnail_uri(b"GIF89a truncated")


def test_missing_corrupt_and_escaping_files_fall_back_to_names_and_are_counted(tmp_path):
    folder = str(_images_folder(tmp_path))
    ids = ["red.jpg", "green.png", "blue.jpg", "corrupt.jpg", "empty.jpg", "gone.jpg",
           "../images/red.jpg", "red.jpg"]
    thumbs = thumbnails.load_thumbnails(folder, ids)
    assert sorted(thumbs.uris) == ["blue.jpg", "green.png", "red.jpg"]
    assert thumbs.unavailable == ("../images/red.jpg", "corrupt.jpg", "empty.jpg", "gone.jpg")
    assert thumbs.note() == (f"thumbnails of 3 result images from {folder}; 4 missing, "
                             "unreadable or outside the folder, shown by name "
                             "(e.g. ../images/red.jpg)")
    assert thumbnails.load_thumbnails("", ids).uris == {}
    assert "no images folder" in thumbnails.load_thumbnails("", ids).note()


def test_a_symlink_out_of_the_images_folder_is_not_read(tmp_path):
    folder = _images_folder(tmp_path)
    secret = tmp_path / "private" / "secret.jpg"
    secret.parent.mkdir()
    Image.new("RGB", (30, 20), (255, 255, 0)).save(secret)
    (folder / "leak.jpg").symlink_to(secret)
    (folder / "sub").symlink_to(secret.parent, target_is_directory=True)
    (folder / "alias.jpg").symlink_to(folder / "red.jpg")  # a link inside the folder is fine
    ids = ["leak.jpg", "sub/secret.jpg", "alias.jpg"]
    thumbs = thumbnails.load_thumbnails(str(folder), ids)
    assert sorted(thumbs.uris) == ["alias.jpg"]
    assert thumbs.unavailable == ("leak.jpg", "sub/secret.jpg")
    assert "2 missing, unreadable or outside the folder" in thumbs.note()
    linked_folder = tmp_path / "linked"  # the folder itself may be a link
    linked_folder.symlink_to(folder, target_is_directory=True)
    assert sorted(thumbnails.load_thumbnails(str(linked_folder), ids).uris) == ["alias.jpg"]


def test_find_images_dir_prefers_the_option_then_the_data_s_eval_photos(tmp_path):
    assert thumbnails.find_images_dir("/given", str(tmp_path)) == "/given"
    assert thumbnails.find_images_dir(None, str(tmp_path)) == ""
    (tmp_path / "images").mkdir()
    assert thumbnails.find_images_dir(None, str(tmp_path)) == str(tmp_path / "images")
    (tmp_path / "dev_images").mkdir()  # the eval split's photos, which the panel shows
    assert thumbnails.find_images_dir(None, str(tmp_path)) == str(tmp_path / "dev_images")
    assert thumbnails.find_images_dir("", "gs://bucket/data") == ""


def _thumbnail_page(tmp_path):
    thumbs = thumbnails.load_thumbnails(str(_images_folder(tmp_path)), [*COLORS, "gone.jpg"])
    queries = [
        data.QueryResult("q#0", "a red thing", "red.jpg", 1,
                         (("red.jpg", "red", True), ("green.png", "green", False),
                          ("gone.jpg", "lost", False))),
        data.QueryResult("q#1", "a blue thing", "blue.jpg", 1, (("blue.jpg", "blue", True),)),
    ]
    return render.render_html(render.ReportPage("T", [], None, [], b"PNG", queries,
                                                [thumbs.note()], thumbs.uris))


def test_report_embeds_thumbnails_with_file_names_as_captions(tmp_path):
    page = _thumbnail_page(tmp_path)
    assert page.count("src='data:image/jpeg;base64,") == 3  # gone.jpg has none
    uris = [part.split("'", 1)[0] for part in page.split("src='")[1:]]
    jpegs = [_decode(u) for u in uris if u.startswith(thumbnails.DATA_URI_PREFIX)]
    assert [j.size for j in jpegs] == [(112, 75)] * 3
    assert "<figcaption>red.jpg ✓</figcaption>" in page
    assert "<figcaption>green.png</figcaption>" in page
    assert "<td class='text'>gone.jpg</td>" in page and "1 missing, unreadable or outside" in page
    assert len(page) < 50_000  # three thumbnails: a few KB each


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium installed")
def test_thumbnails_render_in_a_real_browser(tmp_path):
    """Headless Chromium shows the embedded thumbnails: their colours are on the screenshot."""
    (tmp_path / "index.html").write_text(_thumbnail_page(tmp_path), encoding="utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1200,1600", f"file://{tmp_path / 'index.html'}"],
        check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int).reshape(-1, 3)
    for color in COLORS.values():
        near = (np.abs(pixels - color).max(axis=1) < 30).sum()
        assert near > 0.8 * 112 * 75, f"{color}: only {near} pixels on the screenshot"


@pytest.mark.slow(minutes=1)
@pytest.mark.e2e
def test_executor_writes_report_next_to_evaluation(tmp_path):
    from components.eval_report import component, executor
    from components.retrieval_metrics import MetricSettings, build_eval_config
    from tests.components import tiny_retrieval_model as tiny

    tiny.make_workspace(tmp_path)
    found = tiny.artifacts(tmp_path)
    config = build_eval_config(rsum_lower_bound=0.0, settings=MetricSettings(with_ndcg=False))
    evaluation_uri, _, _ = tiny.run_evaluator(tmp_path, "run", config, baseline="other")
    from tfx.types import standard_artifacts

    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = evaluation_uri
    report = component.EvalReport()
    report.uri = str(tmp_path / "report")
    executor.Executor().Do(
        {"evaluation": [evaluation], "model": [found["good"]],
         "baseline_model": [found["other"]], "examples": [found["examples"]]},
        {"report": [report]}, {"split": "eval", "num_queries": 3, "max_k": 5})
    page = (tmp_path / "report" / "index.html").read_text()
    assert (tmp_path / "report" / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"
    assert "Validation passed" in page and "rsum" in page and "i2t_meanr" in page
    rows, ok, failures = data.metric_rows(evaluation_uri)
    rsum = next(r for r in rows if r.name == "rsum")
    assert ok and not failures and rsum.diff == pytest.approx(rsum.candidate - rsum.baseline)
    assert f"<td>{rsum.candidate:.2f}</td><td>{rsum.baseline:.2f}</td>" in page
    assert page.count("<h3>") == 3
    assert report.get_string_custom_property("report_path") == executor.report_path(report.uri)
