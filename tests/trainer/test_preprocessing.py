import dataclasses
import functools
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from trainer import features as F
from trainer import preprocessing as pp

# Token counts: a 4, dog 3, runs 2, 's / ball / cat 1 (no ties, so the vocabulary order is fixed).
CAPTIONS = ["A dog runs.", "A dog's ball!", "a  CAT runs", "A Dog"]
IDS = {
    F.IMAGE_ID_KEY: np.array([b"i0.jpg", b"i1.jpg", b"i1.jpg", b"i2.jpg"]),
    F.CAPTION_ID_KEY: np.array([b"i0.jpg#0", b"i1.jpg#0", b"i1.jpg#1", b"i2.jpg#0"]),
}


@dataclasses.dataclass
class Run:
    """One AnalyzeAndTransformDataset run: its raw batch, its outputs, its written transform."""

    raw: dict[str, np.ndarray]
    transformed: dict[str, np.ndarray]
    output: tft.TFTransformOutput


def _raw_batch(image: list, caption_features: list | None) -> dict[str, np.ndarray]:
    raw = dict(IDS, **{F.CAPTION_KEY: np.array([c.encode() for c in CAPTIONS])})
    raw[F.IMAGE_FEATURES_KEY] = np.array(image, np.float32)
    if caption_features is not None:
        raw[F.CAPTION_FEATURES_KEY] = np.array(caption_features, np.float32)
    return raw


def _feature_spec(raw: dict[str, np.ndarray], scalar_shape: list) -> dict:
    string_keys = (*F.ID_KEYS, F.CAPTION_KEY)
    spec = {key: tf.io.FixedLenFeature(scalar_shape, tf.string) for key in string_keys}
    for key in (F.IMAGE_FEATURES_KEY, F.CAPTION_FEATURES_KEY):
        if key in raw:
            spec[key] = tf.io.FixedLenFeature([raw[key].shape[1]], tf.float32)
    return spec


def _analyze_and_write(out_dir, raw, scalar_shape, custom_config) -> Run:
    spec = _feature_spec(raw, scalar_shape)
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(spec)
    rows = [
        {key: np.reshape(raw[key][i], spec[key].shape).tolist() for key in spec}
        for i in range(len(CAPTIONS))
    ]
    fn = functools.partial(pp.preprocessing_fn, custom_config=custom_config)
    with tft_beam.Context(temp_dir=str(out_dir / "tmp")):
        (data, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(out_dir))
    metadata_io.write_metadata(
        metadata, os.path.join(str(out_dir), tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    transformed = {key: np.stack([row[key] for row in data]) for key in data[0]}
    return Run(raw, transformed, tft.TFTransformOutput(str(out_dir)))


@pytest.fixture(scope="module")
def run_a(tmp_path_factory) -> Run:
    """Schema shape [1] for strings (as SchemaGen infers); zscore images, l2_column captions."""
    raw = _raw_batch(
        image=[[3, 4, 7], [-3, 4, 7], [3, -4, 7], [-3, -4, 7]],
        caption_features=[[1, 1, 0], [1, 2, 0], [1, 2, 0], [1, 4, 0]],
    )
    config = {
        "max_tokens": 3,
        "vocab_frequency_threshold": 2,
        "image_scaling": "zscore",
        "caption_features_scaling": "l2_column",
    }
    return _analyze_and_write(tmp_path_factory.mktemp("run_a"), raw, [1], config)


@pytest.fixture(scope="module")
def run_b(tmp_path_factory) -> Run:
    """Scalar string schema, no caption_features; top_k vocabulary, l2_row images, no WordPiece."""
    raw = _raw_batch(image=[[3, 4], [0, 0], [6, 8], [0, 5]], caption_features=None)
    config = {
        "max_tokens": 5,
        "vocab_top_k": 2,
        "vocab_frequency_threshold": 1,
        "image_scaling": "l2_row",
        "wordpiece_max_tokens": None,
    }
    return _analyze_and_write(tmp_path_factory.mktemp("run_b"), raw, [], config)


# --- TransformConfig ---


def test_config_defaults_and_from_dict():
    assert pp.TransformConfig.from_dict(None) == pp.TransformConfig()
    config = pp.TransformConfig.from_dict({"max_tokens": 7, "image_scaling": "l2_column"})
    assert (config.max_tokens, config.image_scaling) == (7, "l2_column")
    assert config.num_oov_buckets == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_tokens = 3


def test_config_rejects_unknown_keys_naming_them():
    with pytest.raises(ValueError, match=r"\['max_len', 'vocab'\]"):
        pp.TransformConfig.from_dict({"max_len": 3, "vocab": 1, "max_tokens": 4})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_tokens", 0),
        ("max_tokens", 2.0),
        ("max_tokens", True),
        ("num_oov_buckets", 0),
        ("vocab_frequency_threshold", 0),
        ("vocab_top_k", 0),
        ("vocab_top_k", "10"),
        ("image_scaling", "l2"),
        ("caption_features_scaling", None),
    ],
)
def test_config_rejects_bad_values_naming_the_field(key, value):
    with pytest.raises(ValueError, match=f"TransformConfig.{key} must be"):
        pp.TransformConfig.from_dict({key: value})


# --- Scaling without analyzers, and input validation ---


def test_scale_features_none_and_l2_row_eagerly():
    x = tf.constant([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    np.testing.assert_array_equal(pp.scale_features(x, "none").numpy(), x.numpy())
    np.testing.assert_allclose(
        pp.scale_features(x, "l2_row").numpy(), [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]]
    )


def _graph_inputs(key: str, value) -> dict:
    inputs = {name: tf.compat.v1.placeholder(tf.string, [None, 1]) for name in F.ID_KEYS}
    inputs[F.CAPTION_KEY] = tf.compat.v1.placeholder(tf.string, [None])
    inputs[F.IMAGE_FEATURES_KEY] = tf.compat.v1.placeholder(tf.float32, [None, 4])
    inputs[key] = value
    return {name: tensor for name, tensor in inputs.items() if tensor is not None}


@pytest.mark.parametrize(
    ("key", "make_value", "message"),
    [
        (F.CAPTION_KEY, lambda: None, "raw feature 'caption' is missing"),
        (
            F.IMAGE_FEATURES_KEY,
            lambda: tf.SparseTensor([[0, 0]], [1.0], [1, 4]),
            "'image_features' arrived as SparseTensor; the schema must give it a fixed shape",
        ),
        (
            F.CAPTION_KEY,
            lambda: tf.compat.v1.placeholder(tf.string, [None, 2]),
            r"'caption' must be \[N\] or \[N, 1\]",
        ),
        (
            F.IMAGE_FEATURES_KEY,
            lambda: tf.compat.v1.placeholder(tf.float32, [None, None]),
            "'image_features' must be .* fixed D",
        ),
    ],
)
def test_preprocessing_fn_rejects_bad_inputs_naming_the_feature(key, make_value, message):
    with tf.Graph().as_default(), pytest.raises(ValueError, match=message):
        pp.preprocessing_fn(_graph_inputs(key, make_value()), {})


# --- What the pipeline writes (hand-computed) ---


def test_run_a_tokens_vocabulary_and_scaling(run_a):
    out = run_a.transformed
    # vocabulary [a, dog, runs] -> ids 1, 2, 3; OOV bucket -> 4; padding 0; max_tokens 3.
    np.testing.assert_array_equal(
        out[F.CAPTION_TOKENS_XF], [[1, 2, 3], [1, 2, 4], [1, 4, 3], [1, 2, 0]]
    )
    np.testing.assert_array_equal(out[F.CAPTION_LENGTH_XF], [3, 3, 3, 2])
    # zscore per dimension: means (0, 0, 7), stds (3, 4, 0) -> constant dimension centred to 0.
    np.testing.assert_allclose(
        out[F.IMAGE_FEATURES_XF], [[1, 1, 0], [-1, 1, 0], [1, -1, 0], [-1, -1, 0]], atol=1e-6
    )
    # l2_column: column norms (2, 5, 0) -> the all-zero column stays 0.
    np.testing.assert_allclose(
        out[F.CAPTION_FEATURES_XF],
        [[0.5, 0.2, 0], [0.5, 0.4, 0], [0.5, 0.4, 0], [0.5, 0.8, 0]],
        atol=1e-6,
    )
    for key in F.ID_KEYS:
        np.testing.assert_array_equal(out[key], IDS[key])
    assert out[F.CAPTION_TOKENS_XF].dtype == np.int64
    assert out[F.IMAGE_FEATURES_XF].dtype == np.float32


def test_run_b_top_k_vocabulary_row_scaling_and_no_caption_features(run_b):
    out = run_b.transformed
    # top_k 2: vocabulary [a, dog] -> ids 1, 2; runs/'s/ball/cat -> OOV 3; max_tokens 5.
    np.testing.assert_array_equal(
        out[F.CAPTION_TOKENS_XF],
        [[1, 2, 3, 0, 0], [1, 2, 3, 3, 0], [1, 3, 3, 0, 0], [1, 2, 0, 0, 0]],
    )
    np.testing.assert_array_equal(out[F.CAPTION_LENGTH_XF], [3, 4, 3, 2])
    np.testing.assert_allclose(
        out[F.IMAGE_FEATURES_XF], [[0.6, 0.8], [0, 0], [0.6, 0.8], [0, 1]], atol=1e-6
    )
    assert F.CAPTION_FEATURES_XF not in out


def test_vocabulary_file_is_readable_and_sizes_the_embedding(run_a, run_b):
    path = run_a.output.vocabulary_file_by_name(pp.VOCAB_NAME)
    with open(path, encoding="utf-8") as vocab_file:
        assert vocab_file.read().splitlines() == ["a", "dog", "runs"]
    assert pp.token_vocab_size(run_a.output) == 3 + 1 + 1
    assert pp.token_vocab_size(run_a.output, pp.TransformConfig()) == 3 + 1 + 1
    assert pp.token_vocab_size(run_b.output) == 2 + 1 + 1


def test_token_vocab_size_rejects_a_config_that_differs_from_the_transform(run_b):
    with pytest.raises(ValueError, match="vocabulary 2 \\+ num_oov_buckets 3 \\+ padding = 6"):
        pp.token_vocab_size(run_b.output, pp.TransformConfig(num_oov_buckets=3))


# --- Training-serving consistency: the saved transform graph on the same raw inputs ---


def _serve(run: Run, keys) -> dict[str, np.ndarray]:
    raw = {key: tf.constant(run.raw[key]) for key in keys}
    conformed = pp.conform_to_raw_spec(raw, run.output.raw_feature_spec())
    outputs = run.output.transform_features_layer()(conformed)
    return {key: value.numpy() for key, value in outputs.items()}


@pytest.mark.parametrize("run_name", ["run_a", "run_b"])
def test_serving_transform_of_full_examples_equals_pipeline_output(run_name, request):
    run = request.getfixturevalue(run_name)
    served = _serve(run, run.raw)
    assert sorted(served) == sorted(run.transformed)
    for key, value in run.transformed.items():
        np.testing.assert_array_equal(served[key], value, err_msg=key)


@pytest.mark.parametrize("run_name", ["run_a", "run_b"])
def test_serving_transform_of_caption_only_gives_the_pipeline_tokens(run_name, request):
    run = request.getfixturevalue(run_name)
    served = _serve(run, [F.CAPTION_KEY])  # caption string [N], as embed_text feeds it
    tokens = [F.CAPTION_LENGTH_XF, F.CAPTION_TOKENS_XF]
    wordpiece = [F.CAPTION_WORDPIECE_IDS_XF, F.CAPTION_WORDPIECE_MASK_XF]  # the default's
    assert sorted(served) == sorted(tokens + (wordpiece if run_name == "run_a" else []))
    for key, value in served.items():
        np.testing.assert_array_equal(value, run.transformed[key], err_msg=key)


@pytest.mark.parametrize("run_name", ["run_a", "run_b"])
def test_serving_transform_of_image_features_only_gives_the_pipeline_features(run_name, request):
    run = request.getfixturevalue(run_name)
    served = _serve(run, [F.IMAGE_FEATURES_KEY])
    assert sorted(served) == [F.IMAGE_FEATURES_XF]
    np.testing.assert_array_equal(served[F.IMAGE_FEATURES_XF], run.transformed[F.IMAGE_FEATURES_XF])


def test_serving_empty_and_unseen_captions(run_a):
    captions = tf.constant([[""], ["Zebra, DOG!!"], [" ... "]])  # [N, 1] as the schema says
    served = run_a.output.transform_features_layer()({F.CAPTION_KEY: captions})
    np.testing.assert_array_equal(served[F.CAPTION_LENGTH_XF].numpy(), [0, 2, 0])
    np.testing.assert_array_equal(
        served[F.CAPTION_TOKENS_XF].numpy(), [[0, 0, 0], [4, 2, 0], [0, 0, 0]]
    )


def test_conform_to_raw_spec_rejects_unknown_features(run_a):
    with pytest.raises(ValueError, match=r"\['captions'\] are not in the raw feature spec"):
        pp.conform_to_raw_spec({"captions": tf.constant(["a"])}, run_a.output.raw_feature_spec())


# --- Analyzer cache: an unchanged span is not re-analyzed ---


def _analyze_span(rows, metadata, temp_dir, cache_dir, read_cache: bool) -> list[str]:
    """Analyzes ``rows`` as span 0 (reading the span's cache when asked); returns the vocabulary."""
    import apache_beam as beam
    from tensorflow_transform.beam import analyzer_cache

    span = analyzer_cache.DatasetKey("span-0")
    fn = functools.partial(pp.preprocessing_fn, custom_config={"vocab_frequency_threshold": 2})
    out_dir = os.path.join(temp_dir, "out")
    with tft_beam.Context(temp_dir=os.path.join(temp_dir, "tmp")), beam.Pipeline() as pipeline:
        cache = {}
        if read_cache:
            cache = pipeline | analyzer_cache.ReadAnalysisCacheFromFS(cache_dir, [span])
        data = {span: pipeline | beam.Create(rows, reshuffle=False)}
        transform_fn, output_cache = (data, cache, metadata) | tft_beam.AnalyzeDatasetWithCache(fn)
        _ = output_cache | analyzer_cache.WriteAnalysisCacheToFS(pipeline, cache_dir)
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    path = tft.TFTransformOutput(out_dir).vocabulary_file_by_name(pp.VOCAB_NAME)
    with open(path, encoding="utf-8") as vocab_file:
        return vocab_file.read().splitlines()


@pytest.mark.slow(minutes=2)
def test_analyzer_cache_serves_an_unchanged_span_without_reanalysis(tmp_path):
    raw = _raw_batch(image=[[1.0], [2.0], [3.0], [4.0]], caption_features=None)
    spec = _feature_spec(raw, [])
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(spec)
    rows = [{key: raw[key][i].tolist() for key in spec} for i in range(len(CAPTIONS))]
    # Different data under the same span key: a cache hit must ignore it.
    changed = [dict(row, **{F.CAPTION_KEY: b"zebra zebra"}) for row in rows]
    cache_dir = str(tmp_path / "cache")
    first = _analyze_span(rows, metadata, str(tmp_path / "first"), cache_dir, read_cache=False)
    cached = _analyze_span(changed, metadata, str(tmp_path / "cached"), cache_dir, read_cache=True)
    fresh = _analyze_span(changed, metadata, str(tmp_path / "fresh"), cache_dir + "_new", False)
    assert first == ["a", "dog", "runs"]
    assert cached == first
    assert fresh == ["zebra"]
