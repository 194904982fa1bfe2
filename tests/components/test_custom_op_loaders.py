"""Loaders of exported models register the TF-Text ops of a WordPiece graph by themselves.

Each case runs in a fresh interpreter (``tests/components/fresh_load.py``) that imports one
module, loads a tiny exported model whose text tower tokenizes with ``trainer.tokens.wordpiece``
(``BertTokenizer`` ops) and embeds the tiny eval examples; installed libraries are not allowed to
import ``tensorflow_text`` there (TFMA and TFT would, as a side effect), so only our own import
can register the ops.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components.eval_report import data
from tests.components import tiny_retrieval_model as tiny

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wordpiece_model(tmp_path_factory):
    """A Model artifact URI holding the tiny WordPiece model, and the module it was saved from."""
    uri = tmp_path_factory.mktemp("wordpiece_model")
    module = tiny.export(3, str(uri), model_class=tiny.TinyWordPieceModel)
    return str(uri), module


def _fresh_load(module: str, loader: str, model_uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": "-1"}
    return subprocess.run(
        [sys.executable, "-m", "tests.components.fresh_load", module, loader, model_uri],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def _expected(module) -> dict:
    records = [tiny.serialize(row) for row in tiny.examples()]
    embeddings = data.embed_examples(module.serve, records)
    return {"caption_ids": list(embeddings.caption_ids), "text": embeddings.text}


def _assert_same_embeddings(result: subprocess.CompletedProcess, module) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    want = _expected(module)
    assert got["caption_ids"] == want["caption_ids"]
    np.testing.assert_allclose(np.array(got["text"]), want["text"], rtol=1e-6, atol=1e-6)


def test_fixture_tokenizes_with_wordpiece_hand_computed(wordpiece_model):
    _, module = wordpiece_model
    ids, mask = module.wordpiece(tf.constant(["A dog runs", "The RED cat jumps!"]))
    # [CLS]=2 a=10 dog=4 run=6 ##s=8 [SEP]=3; the=11 red->[UNK]=1 cat=5 jump=7 ##s=8 !->[UNK]=1.
    np.testing.assert_array_equal(ids.numpy()[:, :9], [[2, 10, 4, 6, 8, 3, 0, 0, 0],
                                                       [2, 11, 1, 5, 7, 8, 1, 3, 0]])
    np.testing.assert_array_equal(mask.numpy().sum(axis=1), [6, 8])
    records = [tiny.serialize(row) for row in tiny.examples()]
    text = data.embed_examples(module.serve, records).text
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-6)


def test_without_our_import_the_model_does_not_load(wordpiece_model):
    """Control: TFMA imported, but its own tensorflow_text import refused -> not registered."""
    result = _fresh_load("tensorflow_model_analysis", "saved_model", wordpiece_model[0])
    assert result.returncode != 0
    assert "Op type not registered" in result.stderr
    assert "CaseFoldUTF8" in result.stderr or "RegexSplitWithOffsets" in result.stderr


def test_tfma_metric_module_registers_the_ops(wordpiece_model):
    """TFMA imports the custom metric module before it loads the model."""
    result = _fresh_load("components.retrieval_metrics.metric", "saved_model", wordpiece_model[0])
    _assert_same_embeddings(result, wordpiece_model[1])


def test_eval_report_executor_loader_registers_the_ops(wordpiece_model):
    result = _fresh_load("components.eval_report.executor", "eval_report", wordpiece_model[0])
    _assert_same_embeddings(result, wordpiece_model[1])
