import json

import numpy as np
import pytest
import tensorflow as tf

from components.relevance import beam_steps, store
from serving import rouge
from trainer import features

ROWS = [  # (image_id, caption_id, caption)
    ("b.jpg", "b.jpg#1", "A dog runs on the grass."),
    ("a.jpg", "a.jpg#0", "Two children play"),
    ("b.jpg", "b.jpg#0", "a brown dog running"),
    ("c.jpg", "c.jpg#0", "children play with a dog"),
    ("a.jpg", "a.jpg#1", "kids playing outside on grass"),
]


def _example(image_id, caption_id, caption):
    example = tf.train.Example()
    for key, value in ((features.IMAGE_ID_KEY, image_id), (features.CAPTION_ID_KEY, caption_id),
                       (features.CAPTION_KEY, caption)):
        example.features.feature[key].bytes_list.value.append(value.encode())
    example.features.feature[features.IMAGE_FEATURES_KEY].float_list.value.extend([0.0, 1.0])
    return example.SerializeToString()


def _reference_matrix(triples=tuple(ROWS)):
    rows = sorted(triples, key=lambda r: r[1])
    gallery = sorted({r[0] for r in triples})
    refs = {g: [r[2] for r in triples if r[0] == g] for g in gallery}
    return np.array([[rouge.rouge_l(r[2], refs[g]) for g in gallery] for r in rows])


def test_eval_set_is_canonical_and_keyed_by_content():
    a = store.EvalSet.from_triples(*zip(*ROWS, strict=True))
    b = store.EvalSet.from_triples(*zip(*reversed(ROWS), strict=True))
    assert a == b and a.key == b.key
    assert a.caption_ids == ("a.jpg#0", "a.jpg#1", "b.jpg#0", "b.jpg#1", "c.jpg#0")
    assert a.gallery == ("a.jpg", "b.jpg", "c.jpg")
    changed = store.EvalSet.from_triples(*zip(*(ROWS[:-1] + [("a.jpg", "a.jpg#1", "x")]),
                                              strict=True))
    assert changed.key != a.key
    with pytest.raises(ValueError, match="caption id 'b.jpg#1' appears more than once"):
        store.EvalSet.from_triples(*zip(*(ROWS + [ROWS[0]]), strict=True))


def test_compute_matches_reference_rouge_l():
    eval_set = store.EvalSet.from_triples(*zip(*ROWS, strict=True))
    np.testing.assert_allclose(store.compute(eval_set), _reference_matrix(), rtol=1e-6)


def test_parse_triple_names_the_missing_feature():
    example = tf.train.Example.FromString(_example("a.jpg", "a.jpg#0", "x"))
    del example.features.feature[features.CAPTION_KEY]
    with pytest.raises(ValueError, match=r"\[b'a.jpg#0'\]: feature 'caption' must hold exactly"):
        beam_steps.parse_triple(example.SerializeToString())


def test_assemble_reports_a_missing_shard(tmp_path):
    eval_set = store.EvalSet.from_triples(*zip(*ROWS, strict=True))
    np.save(tmp_path / "rows-0000000000.npy", np.zeros((2, 3), np.float32))
    np.save(tmp_path / "rows-0000000004.npy", np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="rows 2..3 have no shard"):
        beam_steps.assemble(str(tmp_path), eval_set)


@pytest.mark.e2e
def test_executor_writes_matrix_artifact_and_cache(tmp_path):
    from tfx.types import standard_artifacts

    from components.relevance import component, executor

    long_row = ("d.jpg", "d.jpg#0", " ".join(["a dog"] * (rouge.MAX_TOKENS // 2 + 50)))
    rows = [*ROWS, long_row]
    split_dir = tmp_path / "examples" / "Split-eval"
    split_dir.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split_dir / "part.gz"), options="GZIP") as writer:
        for row in rows:
            writer.write(_example(*row))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = json.dumps(["train", "eval"])
    output = component.RelevanceMatrix()
    output.uri = str(tmp_path / "relevance")
    cache = tmp_path / "cache"
    executor.Executor().Do({"examples": [examples]}, {"relevance": [output]},
                           {"split": "eval", "cache_dir": str(cache), "queries_per_task": 2})
    eval_set = store.EvalSet.from_triples(*zip(*rows, strict=True))
    for folder in (output.uri, str(cache)):
        np.testing.assert_allclose(store.load(folder, eval_set), _reference_matrix(rows),
                                   rtol=1e-6)
    assert output.get_string_custom_property("content_key") == eval_set.key
    assert output.get_int_custom_property("num_images") == 4
    assert output.get_int_custom_property("captions_cut_to_max_words") == 1
    assert not (tmp_path / "relevance" / executor.SHARDS_DIR).exists()
    with pytest.raises(ValueError, match="has no split 'test'"):
        executor.Executor().Do({"examples": [examples]}, {"relevance": [output]},
                               {"split": "test", "cache_dir": "", "queries_per_task": 2})
