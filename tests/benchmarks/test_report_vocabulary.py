"""report_vocabulary's Transform run (TFRecord input, Beam analysis) matches its Python count."""

import numpy as np

from benchmarks import report_vocabulary
from trainer import features, preprocessing
from trainer.tokens import text

TRAIN = ["A dog runs.", "A dog sits", "two dogs run", "a cat sits", "A bird"]
EVAL = ["a dog flies", "zebra"]


def _rows(captions: list[str]) -> list[dict]:
    return [
        {
            features.IMAGE_ID_KEY: [f"img{k}.jpg".encode()],
            features.CAPTION_ID_KEY: [f"img{k}.jpg#0".encode()],
            features.CAPTION_KEY: [caption.encode()],
            features.IMAGE_FEATURES_KEY: np.full(4, k, np.float32),
        }
        for k, caption in enumerate(captions)
    ]


def test_transform_vocabulary_and_eval_ids_match_the_python_count(tmp_path):
    eval_out, vocabulary, seconds = report_vocabulary.run_transform(
        _rows(TRAIN), _rows(EVAL), {"vocab_frequency_threshold": 2}, str(tmp_path))

    tokens = [text.tokenize_py(caption) for caption in TRAIN]
    # "a" x4, "dog" x2, "sits" x2; every other token once.
    assert set(vocabulary) == {"a", "dog", "sits"}
    assert set(vocabulary) == report_vocabulary.python_vocabulary(tokens, 2, None)
    assert seconds > 0
    ids = eval_out[features.CAPTION_TOKENS_XF]
    assert ids.shape[0] == len(EVAL)
    real = ids != preprocessing.PADDING_ID
    assert real.sum(axis=1).tolist() == [3, 1]  # "a dog flies", "zebra"
    oov = real & (ids > len(vocabulary))
    assert oov.sum(axis=1).tolist() == [1, 1]  # "flies", "zebra"
    figures = report_vocabulary.kept_token_figures(eval_out, len(vocabulary))
    assert figures["oov_kept"] == 2 / 4
    assert figures["captions_with_oov"] == 1.0
