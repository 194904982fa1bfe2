import numpy as np

from trainer.train import warm_start


def test_remap_embedding_matches_rows_by_token():
    old_vocab = ["dog", "cat", "red"]
    new_vocab = ["cat", "blue", "dog"]
    # rows: padding, dog, cat, red, oov
    old = np.array([[0.0], [1.0], [2.0], [3.0], [9.0]])
    new = np.full((5, 1), -1.0)  # padding, cat, blue, dog, oov
    out = warm_start.remap_embedding(new, old, new_vocab, old_vocab)
    np.testing.assert_array_equal(out[:, 0], [0.0, 2.0, -1.0, 1.0, 9.0])
    assert (new == -1.0).all()  # input untouched


def test_read_vocabulary_keeps_order(tmp_path):
    path = tmp_path / "vocab"
    path.write_text("a\nb\nc\n")
    assert warm_start.read_vocabulary(str(path)) == ["a", "b", "c"]
