import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from serving import search_cli
from serving.client import EmbeddingClient, LocalBackend
from serving.gallery import build_index, load_index
from serving.gallery_sources import GalleryRecords
from serving.models_config import models_config
from serving.search import GallerySearcher
from serving.search_model import INDEX_SUBDIR, write_search_model
from serving.toy_model import DEFAULT_VOCABULARY, write_toy_encoder
from tests.serving.cli_process import run_search
from tests.serving.conftest import FEATURE_DIM

SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"
IMAGE_IDS = [f"img{i}.jpg" for i in range(7)]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A search model under <serving>/toy_search/12/, its encoder deleted afterwards."""
    root = tmp_path_factory.mktemp("search")
    encoder = write_toy_encoder(root / "encoder", FEATURE_DIM, 8)
    client = EmbeddingClient(LocalBackend(str(encoder)))
    rng = np.random.default_rng(3)
    records = GalleryRecords(
        IMAGE_IDS, [f"caption of {i}" for i in IMAGE_IDS],
        rng.uniform(0, 6, (7, FEATURE_DIM)).astype(np.float32),
        ["img0.jpg#0", "img1.jpg#0", "img1.jpg#1"], ["a dog runs", "two girls", "a red ball"],
        ["img0.jpg", "img1.jpg", "img1.jpg"], source="test")
    index = build_index(records, client, "toy", 12)
    searcher = GallerySearcher(index, client)
    model_dir = root / "serving" / "toy_search" / "12"
    write_search_model(str(encoder), index, str(model_dir), k=4, chunk_size=3)
    shutil.rmtree(encoder)  # the search model must be self-contained
    return root / "serving", model_dir, searcher, records


def test_search_signature_scalar_and_batch_match_python_search(published):
    _, model_dir, searcher, _ = published
    signature = tf.saved_model.load(str(model_dir)).signatures["search"]
    single = signature(caption=tf.constant("a dog runs on the beach"))
    assert single["ids"].shape == (4,) and single["scores"].shape == (4,)
    expected = searcher.text_to_images(["a dog runs on the beach", "snow"], k=4)
    assert [i.decode() for i in single["ids"].numpy()] == [h.id for h in expected[0]]
    np.testing.assert_allclose(single["scores"], [h.score for h in expected[0]], atol=1e-5)
    assert [c.decode() for c in single["captions"].numpy()] == [h.text for h in expected[0]]
    batch = signature(caption=tf.constant(["a dog runs on the beach", "snow"]))
    assert batch["ids"].shape == (2, 4)
    assert [i.decode() for i in batch["ids"].numpy()[1]] == [h.id for h in expected[1]]


def test_image_and_caption_signatures(published):
    _, model_dir, searcher, records = published
    model = tf.saved_model.load(str(model_dir))
    out = model.signatures["search_images"](image_features=tf.constant(records.image_features))
    assert [i.decode() for i in out["ids"].numpy()[:, 0]] == IMAGE_IDS  # each finds itself
    np.testing.assert_allclose(out["scores"].numpy()[:, 0], 1.0, atol=1e-5)
    captions = model.signatures["search_captions"](caption=tf.constant(["a red ball"]))
    assert captions["ids"].shape == (1, 3)  # k clamped to the 3 gallery captions
    assert captions["ids"].numpy()[0, 0] == b"img1.jpg#1"
    assert captions["captions"].numpy()[0, 0] == b"a red ball"


def test_index_travels_with_the_search_model(published):
    _, model_dir, searcher, _ = published
    index = load_index(str(model_dir / INDEX_SUBDIR))
    assert (index.model_name, index.model_version) == ("toy", 12)
    np.testing.assert_allclose(index.image_embeddings, searcher.index.image_embeddings)


# A second TensorFlow start-up; test_contract runs saved_model_cli by default.
@pytest.mark.slow(minutes=1)
def test_saved_model_cli_lists_search_signatures(published):
    _, model_dir, _, _ = published
    out = subprocess.run([str(SAVED_MODEL_CLI), "show", "--dir", str(model_dir),
                          "--tag_set", "serve"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    for name in ("search", "search_images", "search_captions"):
        assert f'SignatureDef key: "{name}"' in out


def test_cli_prints_top_k_with_scores_and_captions(published, capsys):
    serving_dir, _, searcher, _ = published
    status = search_cli.main(["a dog runs", "--serving-dir", str(serving_dir),
                              "--model-name", "toy", "--k", "3"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0].startswith('text2image query: "a dog runs"') and "7 images" in out[0]
    expected = searcher.text_to_images(["a dog runs"], k=3)[0]
    for line, hit in zip(out[1:4], expected, strict=True):
        assert line.split(None, 3)[2:] == [hit.id, hit.text]
        assert float(line.split()[1]) == pytest.approx(hit.score, abs=1e-4)
    assert out[4].startswith("search: ")


def test_cli_text2text_and_image2image_modes(published, capsys):
    serving_dir, _, searcher, records = published
    common = ["--serving-dir", str(serving_dir), "--model-name", "toy", "--k", "2"]
    assert search_cli.main(["a red ball", "--mode", "text2text", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split(None, 3)[2:] == ["img1.jpg#1", "a red ball"]
    assert search_cli.main(["img3.jpg", "--mode", "image2image", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = searcher.image_to_images(records.image_features[3:4], k=2)[0]
    assert [line.split()[2] for line in lines[1:3]] == [h.id for h in expected]
    assert lines[1].split()[1] == "+1.0000"
    assert search_cli.main(["nope.jpg", "--mode", "image2image", *common]) == 2
    assert "image id 'nope.jpg' is not in the gallery" in capsys.readouterr().err


def test_cli_errors(published, tmp_path, capsys):
    serving_dir, _, _, _ = published
    assert search_cli.main(["q", "--serving-dir", str(tmp_path), "--model-name", "toy"]) == 2
    assert "no search model any version" in capsys.readouterr().err
    assert search_cli.main(["q", "--serving-dir", str(serving_dir), "--model-name", "toy",
                            "--k", "5"]) == 2
    assert "returns at most 4" in capsys.readouterr().err
    assert search_cli.main(["q", "--serving-dir", str(serving_dir), "--model-name", "toy",
                            "--version", "3"]) == 2
    assert "version 3" in capsys.readouterr().err


@pytest.mark.parametrize("query", ["", "   ", "\t"])
def test_cli_refuses_an_empty_query(published, capsys, query):
    serving_dir, _, _, _ = published
    assert search_cli.main([query, "--serving-dir", str(serving_dir), "--model-name", "toy"]) == 2
    captured = capsys.readouterr()
    assert "error: the query is empty" in captured.err and captured.out == ""


def test_cli_warns_when_no_query_word_is_in_the_vocabulary(published, capsys):
    serving_dir, _, _, _ = published
    common = ["--serving-dir", str(serving_dir), "--model-name", "toy", "--k", "2"]
    assert search_cli.main(["zzz qqq!", *common]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("warning: no word of the query (zzz qqq) is in the model's "
                                   f"vocabulary of {len(DEFAULT_VOCABULARY)} tokens")
    assert search_cli.main(["zzz dog", *common]) == 0  # one known word is enough
    assert capsys.readouterr().err == ""


def test_wordpiece_models_never_get_the_unknown_words_warning(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "caption_tokens").write_text("a\ndog\n", encoding="utf-8")
    (tmp_path / "saved_model.pb").write_bytes(b"graph without a wordpiece tokenizer")
    assert "no word of the query" in search_cli.unknown_query_warning(str(tmp_path), "zzz")
    assert search_cli.unknown_query_warning(str(tmp_path), "a zzz") is None
    (tmp_path / "saved_model.pb").write_bytes(b"..." + search_cli.WORDPIECE_OP + b"...")
    assert search_cli.unknown_query_warning(str(tmp_path), "zzz") is None


def test_pipeline_search_picks_a_version_and_forwards_every_option(published, tmp_path, capsys):
    from pipeline import cli

    _, model_dir, _, _ = published
    for version in ("12", "13"):
        shutil.copytree(model_dir, tmp_path / "toy_search" / version)
    common = ["a dog", "--serving-dir", str(tmp_path), "--model-name", "toy", "-k", "2"]
    assert cli.main(["search", *common]) == 0
    assert f"{tmp_path / 'toy_search' / '13'}:" in capsys.readouterr().out
    assert cli.main(["search", *common, "--version", "12"]) == 0
    assert f"{tmp_path / 'toy_search' / '12'}:" in capsys.readouterr().out
    assert cli.main(["search", "", "--serving-dir", str(tmp_path), "--model-name", "toy"]) == 2


def test_pipeline_search_help_lists_real_options_and_refuses_abbreviations(capfd, tmp_path,
                                                                            monkeypatch):
    from pipeline import cli

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the search log goes
    with pytest.raises(SystemExit) as exit_:
        cli.main(["search", "--help"])
    assert exit_.value.code == 0
    help_text = capfd.readouterr().out
    assert "--version" in help_text and "--mode" in help_text
    assert "image-query" not in help_text
    with pytest.raises(SystemExit) as exit_:
        cli.main(["search", "q", "--vers", "3"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --vers" in capfd.readouterr().err  # on the terminal


def test_cli_refuses_a_query_that_is_not_utf8(published, capsys):
    serving_dir, _, _, _ = published
    query = b"a \xff dog".decode("utf-8", "surrogateescape")  # how Python gets such argv bytes
    assert search_cli.main([query, "--serving-dir", str(serving_dir), "--model-name", "toy"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("error: the query is not valid UTF-8: b'\\xff' at character 2; give "
                            "the text in UTF-8 (check the terminal's encoding)\n")
    assert captured.out == ""


@pytest.mark.parametrize("content", [b"model_config_list { config { name: ", b"\xff\xfe\x00"])
def test_cli_warns_about_a_models_config_that_tf_serving_cannot_read(published, tmp_path, capsys,
                                                                    content):
    _, model_dir, _, _ = published
    shutil.copytree(model_dir, tmp_path / "toy_search" / "12")
    common = ["a dog", "--serving-dir", str(tmp_path), "--model-name", "toy", "-k", "2"]
    (tmp_path / "models.config").write_text(models_config(["toy"], "/models"))
    assert search_cli.main(common) == 0
    assert capsys.readouterr().err == ""
    (tmp_path / "models.config").write_bytes(content)
    assert search_cli.main(common) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"warning: {tmp_path / 'models.config'}: not a valid TF "
                                   "Serving ModelServerConfig")
    assert captured.err.count("\n") == 1 and "a model server started with that file" in \
        captured.err
    assert captured.out.startswith('text2image query: "a dog"')


def test_pipeline_search_sends_library_noise_to_its_log(published, tmp_path):
    """``python -m pipeline search``: TensorFlow's C++ lines and Python warnings go to the log."""
    serving_dir, _, _, _ = published
    done = run_search(["a dog runs", "--serving-dir", str(serving_dir), "--model-name", "toy",
                       "-k", "3"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith('text2image query: "a dog runs"')
    log = (tmp_path / f"xmodal-search-{os.getuid()}.log").read_text(errors="replace")
    assert "FutureWarning" in log


def test_pipeline_search_unexpected_error_is_one_line_naming_the_log(published, tmp_path):
    _, model_dir, _, _ = published
    serving_dir = tmp_path / "serving"
    shutil.copytree(model_dir, serving_dir / "toy_search" / "12")
    (serving_dir / "toy_search" / "12" / "saved_model.pb").write_bytes(b"not a graph")
    done = run_search(["a dog", "--serving-dir", str(serving_dir), "--model-name", "toy"],
                      tmp_path)
    assert done.returncode == 1
    log_path = tmp_path / f"xmodal-search-{os.getuid()}.log"
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert done.stderr.endswith(f" (details: {log_path})\n")
    assert "Traceback" in log_path.read_text(errors="replace")


def test_index_without_captions_has_no_caption_signature(tmp_path):
    encoder = write_toy_encoder(tmp_path / "encoder", FEATURE_DIM, 8)
    client = EmbeddingClient(LocalBackend(str(encoder)))
    records = GalleryRecords(["x.jpg"], [""], np.ones((1, FEATURE_DIM), np.float32), [], [], [],
                             source="test")
    export = write_search_model(str(encoder), build_index(records, client, "toy", 1),
                                str(tmp_path / "search"), k=3)
    model = tf.saved_model.load(export)
    assert sorted(model.signatures) == ["search", "search_images"]
    assert model.signatures["search"](caption=tf.constant("x"))["ids"].numpy().tolist() == \
        [b"x.jpg"]


def test_tf_serving_warmup_file_holds_a_search_request(published):
    from tensorflow_serving.apis import prediction_log_pb2

    _, model_dir, _, _ = published
    path = model_dir / "assets.extra" / "tf_serving_warmup_requests"
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert len(records) == 1
    request = prediction_log_pb2.PredictionLog.FromString(records[0]).predict_log.request
    assert request.model_spec.signature_name == "search"
    assert list(request.inputs["caption"].string_val) == [b"a dog runs on the beach"]
