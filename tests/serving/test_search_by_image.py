"""Image queries of the search SavedModel (``search_by_image``, ``search_captions_by_image``)
and of ``python -m pipeline search --image``."""

import os
import re
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from serving import search_cli
from serving.client import EmbeddingClient, LocalBackend
from serving.gallery import build_index
from serving.gallery_sources import GalleryRecords
from serving.photo_file import read_photo_file
from serving.search_model import write_search_model
from serving.search_photos import read_image
from tests import images
from tests.serving.cli_process import GIB, run_search

IMAGE_IDS = [f"img{i}.jpg" for i in range(6)]
CAPTION_IDS = ["img0.jpg#0", "img1.jpg#0", "img2.jpg#0"]


@pytest.fixture(scope="module")
def published(bytes_model_dir, tmp_path_factory):
    """A search model over six noise photos, embedded from their backbone features."""
    root = tmp_path_factory.mktemp("search_by_image")
    photos = [images.jpeg(seed) for seed in range(len(IMAGE_IDS))]
    encoder = tf.saved_model.load(str(bytes_model_dir))
    image_features = encoder.image_features_from_bytes(tf.constant(photos)).numpy()
    records = GalleryRecords(IMAGE_IDS, [f"caption of {i}" for i in IMAGE_IDS], image_features,
                             CAPTION_IDS, ["a dog runs", "two girls", "a red ball"],
                             ["img0.jpg", "img1.jpg", "img2.jpg"], source="test")
    client = EmbeddingClient(LocalBackend(str(bytes_model_dir)))
    index = build_index(records, client, "toy", 3)
    model_dir = root / "serving" / "toy_search" / "3"
    write_search_model(str(bytes_model_dir), index, str(model_dir), k=4)
    for name, data in zip(IMAGE_IDS, photos, strict=True):
        (root / name).write_bytes(data)
    return root, model_dir, client, index


def test_every_gallery_photo_finds_itself_first(published):
    root, model_dir, _, _ = published
    search = tf.saved_model.load(str(model_dir)).signatures["search_by_image"]
    photos = [(root / name).read_bytes() for name in IMAGE_IDS]
    out = search(image_bytes=tf.constant(photos))
    assert out["ids"].shape == (6, 4)
    assert [i.decode() for i in out["ids"].numpy()[:, 0]] == IMAGE_IDS
    np.testing.assert_allclose(out["scores"].numpy()[:, 0], 1.0, atol=1e-5)
    assert out["captions"].numpy()[2, 0] == b"caption of img2.jpg"
    single = search(image_bytes=tf.constant(photos[4]))
    assert single["ids"].shape == (4,) and single["ids"].numpy()[0] == b"img4.jpg"


def test_photo_to_captions_ranks_by_the_encoder_s_cosine(published):
    root, model_dir, client, index = published
    model = tf.saved_model.load(str(model_dir))
    photo = images.cmyk_jpeg(7)
    out = model.signatures["search_captions_by_image"](image_bytes=tf.constant([photo]))
    scores = index.caption_embeddings @ client.embed_images([photo])[0]
    order = np.argsort(-scores, kind="stable")
    assert out["ids"].shape == (1, 3)  # k clamped to the 3 gallery captions
    assert [i.decode() for i in out["ids"].numpy()[0]] == [CAPTION_IDS[i] for i in order]
    np.testing.assert_allclose(out["scores"].numpy()[0], scores[order], atol=1e-5)
    assert sorted(model.signatures) == ["search", "search_by_image", "search_captions",
                                        "search_captions_by_image", "search_images"]


@pytest.mark.parametrize("name, message", [
    ("empty.jpg", "image 0 is empty"),
    ("text.jpg", "image 0 is not a JPEG or PNG"),
    ("truncated.jpg", "image 0 is a truncated JPEG"),
    ("truncated.png", "image 0 is a truncated PNG"),
    ("huge.png", "image 0 is too large"),
    ("huge.jpg", "image 0 is too large"),
])
def test_bad_bytes_are_invalid_argument_and_the_model_goes_on(published, name, message):
    _, model_dir, _, _ = published
    search = tf.saved_model.load(str(model_dir)).signatures["search_by_image"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        search(image_bytes=tf.constant([images.bad_files()[name]]))
    assert search(image_bytes=tf.constant([images.jpeg(0)]))["ids"].numpy()[0, 0] == b"img0.jpg"


def _cli(root, *args) -> int:
    return search_cli.main([*args, "--serving-dir", str(root / "serving"), "--model-name", "toy",
                            "--k", "3"])


def test_cli_image_query_finds_the_photo_itself(published, capsys):
    root, _, _, _ = published
    assert _cli(root, "--image", str(root / "img3.jpg")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"image2image query: image {root / 'img3.jpg'}")
    assert lines[1].split()[1:3] == ["+1.0000", "img3.jpg"]
    assert len(lines) == 5 and lines[4].startswith("search: ")
    assert _cli(root, "--image", str(root / "img1.jpg"), "--mode", "image2text") == 0
    assert capsys.readouterr().out.splitlines()[1].split()[2].endswith("#0")


CLI_ERRORS = {
    "empty.jpg": "empty (0 bytes)",
    "text.jpg": "not a JPEG or PNG image",
    "truncated.jpg": "truncated JPEG (no end-of-image marker)",
    "truncated.png": "truncated PNG (no IEND chunk)",
    "huge.png": "too large: 100000x100000",
    "huge.jpg": "too large: 65500x65500",
    "corrupt.jpg": "cannot be searched: ",
}


@pytest.mark.parametrize("name", ["absent.jpg", *CLI_ERRORS])
def test_cli_bad_photo_is_one_error_line_naming_it(published, tmp_path, capsys, name):
    root, _, _, _ = published
    files = {**images.bad_files(), "corrupt.jpg": images.corrupt_jpeg()}
    if name in files:
        (tmp_path / name).write_bytes(files[name])
    assert _cli(root, "--image", str(tmp_path / name)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    message = CLI_ERRORS.get(name, "cannot read: No such file or directory")
    assert captured.err.startswith(f"error: {tmp_path / name}: ") and message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_cli_searches_every_good_photo_and_names_each_bad_one(published, tmp_path, capsys):
    root, _, _, _ = published
    for name, data in images.bad_files().items():
        (tmp_path / name).write_bytes(data)
    bad = [str(tmp_path / name) for name in images.bad_files()]
    assert _cli(root, "--image", str(root / "img2.jpg"), *bad, str(root / "img5.jpg")) == 0
    captured = capsys.readouterr()
    blocks = [line for line in captured.out.splitlines() if " query: image " in line]
    assert [line.split()[3] for line in blocks] == [str(root / "img2.jpg"),
                                                   str(root / "img5.jpg")]
    assert captured.out.splitlines()[6].split()[2] == "img5.jpg"  # the second block's rank 1
    errors = captured.err.splitlines()
    assert [line.split(": ")[1] for line in errors] == bad
    assert all(line.startswith("error: ") for line in errors)
    assert _cli(root, "--image", *bad) == 2
    assert len(capsys.readouterr().err.splitlines()) == len(bad)


def test_cli_cmyk_photo_is_converted_not_refused(published, tmp_path, capsys):
    root, _, _, _ = published
    (tmp_path / "cmyk.jpg").write_bytes(images.cmyk_jpeg(3))
    assert _cli(root, "--image", str(tmp_path / "cmyk.jpg")) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


@pytest.mark.parametrize("args, message", [
    (["a dog", "--mode", "image2text"], "--mode image2text searches with a photo"),
    (["--image", "x.jpg", "--mode", "text2text"], "--mode text2text takes a text query"),
    ([], "the query is empty"),
])
def test_cli_query_and_mode_must_fit(published, capsys, args, message):
    root, _, _, _ = published
    assert _cli(root, *args) == 2
    assert message in capsys.readouterr().err


def test_cli_text_query_and_image_are_mutually_exclusive(published, capsys):
    root, _, _, _ = published
    with pytest.raises(SystemExit) as exit_:
        _cli(root, "a dog", "--image", str(root / "img0.jpg"))
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_image_query_needs_an_encoder_that_takes_bytes(toy_model_dir, tmp_path, capsys):
    client = EmbeddingClient(LocalBackend(str(toy_model_dir)))
    records = GalleryRecords(["x.jpg"], [""], np.ones((1, 6), np.float32), [], [], [], "test")
    write_search_model(str(toy_model_dir), build_index(records, client, "toy", 1),
                       str(tmp_path / "serving" / "toy_search" / "1"), k=3)
    (tmp_path / "q.jpg").write_bytes(images.jpeg())
    assert _cli(tmp_path, "--image", str(tmp_path / "q.jpg"), "--k", "1") == 2
    assert "has no 'search_by_image' signature" in capsys.readouterr().err


def test_read_photo_file_refuses_what_is_not_a_regular_file_before_reading(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # no writer: a blocking open would hang
    (tmp_path / "folder.jpg").mkdir()
    for path, kind in [("/dev/zero", "a character device"), (str(fifo), "a named pipe"),
                       (str(tmp_path / "folder.jpg"), "a directory")]:
        with pytest.raises(ValueError, match=f"^{re.escape(path)}: not a regular file \\({kind}"):
            read_photo_file(path)
    with pytest.raises(ValueError, match="cannot read: No such file"):
        read_photo_file(str(tmp_path / "absent.jpg"))
    (tmp_path / "ok.jpg").write_bytes(b"x" * 100)
    assert read_photo_file(str(tmp_path / "ok.jpg"), max_bytes=100) == b"x" * 100
    with pytest.raises(ValueError, match="100 bytes is over the limit of 99 bytes"):
        read_photo_file(str(tmp_path / "ok.jpg"), max_bytes=99)


def test_a_2_gib_photo_is_refused_by_its_size_without_reading_it(tmp_path):
    big = tmp_path / "video.jpg"
    with open(big, "wb") as handle:  # sparse: 2 GiB long, nothing written
        handle.truncate(2 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=f"{2 << 30} bytes is over the limit of 4194304"):
            read_image(str(big))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_search_image_dev_zero_exits_2_quickly_with_bounded_memory(published, tmp_path):
    """``python -m pipeline search --image /dev/zero FIFO``: an error line each, exit 2, peak
    memory under 1 GiB (the child is killed past 1 GiB or 120 s)."""
    root, _, _, _ = published
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # no writer: a blocking open would hang
    done = run_search(["--image", "/dev/zero", str(fifo), "--serving-dir", str(root / "serving"),
                       "--model-name", "toy", "-k", "3"], tmp_path, timeout_s=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("error: /dev/zero: not a regular file (a character device); give a "
                           f"JPEG or PNG file\nerror: {fifo}: not a regular file (a named pipe); "
                           "give a JPEG or PNG file\n")
    assert done.stdout == ""
    assert 100 << 20 < done.peak_rss < GIB  # TensorFlow alone is more than 100 MiB: it was seen
    assert done.seconds < 90  # mostly importing TensorFlow: the files are never read


def test_cli_names_a_path_that_is_not_a_regular_file_and_searches_the_rest(published, tmp_path,
                                                                         capsys):
    root, _, _, _ = published
    (tmp_path / "folder.jpg").mkdir()
    bad = [str(tmp_path / "folder.jpg")]
    assert _cli(root, "--image", *bad, str(root / "img2.jpg")) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].split()[1:3] == ["+1.0000", "img2.jpg"]
    assert [line.split(": ")[1] for line in captured.err.splitlines()] == bad
    assert all("not a regular file" in line for line in captured.err.splitlines())
