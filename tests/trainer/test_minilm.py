"""The Keras MiniLM encoder: hand-computed pooling, weight loading by name, freezing, parity
with the original model's sentence embeddings on real Flickr8k captions, and SavedModel export."""

import json

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

from tests.trainer.test_wordpiece import parity_captions
from trainer.model import minilm
from trainer.tokens import wordpiece

TINY = minilm.MiniLMConfig(
    vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=16, max_position_embeddings=16,
)  # fmt: skip


def _tiny_encoder():
    encoder = minilm.MiniLMEncoder(TINY)
    encoder(tf.zeros([1, 3], tf.int64), tf.ones([1, 3], tf.int64))
    return encoder


def _hf_checkpoint(rng, layers=2, hidden=8, inter=16):
    """Random tensors under HF BERT names and torch [out, in] layouts (written independently)."""
    shapes = {
        "embeddings.word_embeddings.weight": (20, hidden),
        "embeddings.position_embeddings.weight": (16, hidden),
        "embeddings.token_type_embeddings.weight": (2, hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
        "embeddings.position_ids": (1, 16),
        "pooler.dense.weight": (hidden, hidden),
        "pooler.dense.bias": (hidden,),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value"):
            shapes |= {f"{p}{name}.weight": (hidden, hidden), f"{p}{name}.bias": (hidden,)}
        shapes |= {f"{p}attention.output.dense.weight": (hidden, hidden)}
        shapes |= {f"{p}attention.output.dense.bias": (hidden,)}
        shapes |= {f"{p}intermediate.dense.weight": (inter, hidden)}
        shapes |= {f"{p}intermediate.dense.bias": (inter,)}
        shapes |= {f"{p}output.dense.weight": (hidden, inter), f"{p}output.dense.bias": (hidden,)}
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes |= {f"{p}{norm}.weight": (hidden,), f"{p}{norm}.bias": (hidden,)}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def test_masked_mean_hand_computed_and_empty_mask_gives_zeros():
    hidden = tf.constant([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]] * 2)
    mask = tf.constant([[1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(minilm.masked_mean(hidden, mask).numpy(), [[2.0, 3.0], [0, 0]])


def test_config_from_json_reads_fields_and_rejects_other_activations(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 2}))
    config = minilm.MiniLMConfig.from_json(path)
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (8, 2, 30522)
    path.write_text(json.dumps({"model_type": "bert", "hidden_act": "relu"}))
    with pytest.raises(ValueError, match=r"config.json: field 'hidden_act' is 'relu'"):
        minilm.MiniLMConfig.from_json(path)


def test_weights_load_by_name_with_torch_layout_transposed(tmp_path):
    tensors = _hf_checkpoint(np.random.default_rng(0))
    save_file(tensors, str(tmp_path / "model.safetensors"))
    encoder = _tiny_encoder()
    minilm.load_safetensors_weights(encoder, tmp_path / "model.safetensors")
    block = encoder.blocks[1]
    np.testing.assert_array_equal(
        block.query.kernel.numpy(), tensors["encoder.layer.1.attention.self.query.weight"].T
    )
    np.testing.assert_array_equal(
        block.output_dense.kernel.numpy(), tensors["encoder.layer.1.output.dense.weight"].T
    )
    np.testing.assert_array_equal(
        block.attention_norm.gamma.numpy(),
        tensors["encoder.layer.1.attention.output.LayerNorm.weight"],
    )
    np.testing.assert_array_equal(
        encoder.embeddings.word.embeddings.numpy(), tensors["embeddings.word_embeddings.weight"]
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.pop("encoder.layer.1.output.dense.bias"),
         r"'encoder.layer.1.output.dense.bias' is missing"),
        (lambda t: t.update({"encoder.layer.2.output.dense.bias": np.zeros(8, np.float32)}),
         r"not used by the encoder: \['encoder.layer.2.output.dense.bias'\]"),
        (lambda t: t.update({"embeddings.LayerNorm.bias": np.zeros(9, np.float32)}),
         r"'embeddings.LayerNorm.bias' has shape \(9,\).*needs \(8,\)"),
    ],
)  # fmt: skip
def test_weight_loading_errors_name_the_tensor(tmp_path, edit, message):
    tensors = _hf_checkpoint(np.random.default_rng(0))
    edit(tensors)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=message):
        minilm.load_safetensors_weights(_tiny_encoder(), tmp_path / "model.safetensors")


def test_padding_does_not_change_the_sentence_embedding():
    encoder = _tiny_encoder()
    short = encoder(tf.constant([[2, 5, 7, 3]]), tf.constant([[1, 1, 1, 1]]))
    padded = encoder(tf.constant([[2, 5, 7, 3, 0, 0]]), tf.constant([[1, 1, 1, 1, 0, 0]]))
    np.testing.assert_allclose(short.numpy(), padded.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(short.numpy(), axis=1), [1.0], rtol=1e-6)


def test_freeze_keeps_only_the_top_layers_trainable():
    encoder = _tiny_encoder()
    encoder.freeze(1)
    names = {v.name.split("/")[1] for v in encoder.trainable_variables}
    assert names == {"layer_1"}
    assert len(encoder.trainable_variables) == 16  # 6 dense x (kernel, bias) + 2 LN x 2
    encoder.freeze(0)
    assert encoder.trainable_variables == []
    with pytest.raises(ValueError, match=r"trainable_layers must be in \[0, 2\], got 3"):
        encoder.freeze(3)


@pytest.fixture(scope="module")
def pretrained():
    return minilm.load_pretrained_encoder()


def test_sentence_embeddings_match_original_model_on_20_real_captions(flickr8k_dir, pretrained):
    captions = parity_captions(flickr8k_dir)
    features = flickr8k_dir / "features"
    row = {cid: i for i, cid in enumerate((features / "minilm_l6_v2.ids.txt").read_text().split())}
    expected = np.load(features / "minilm_l6_v2.npy")[[row[c] for c in captions]]
    tokens = wordpiece.wordpiece_features(tf.constant(list(captions.values())))
    got = pretrained(tokens[wordpiece.WORDPIECE_IDS_XF], tokens[wordpiece.WORDPIECE_MASK_XF])
    expected = expected.astype(np.float32)
    cosine = np.sum(got.numpy() * expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.999, dict(zip(captions, cosine.round(5), strict=True))


def test_text_tower_projects_to_unit_d_and_freezes_the_encoder():
    tower = minilm.build_minilm_text_tower(d=16, trainable_layers=1)
    tokens = wordpiece.wordpiece_features(tf.constant(["a dog runs", "two men"]), max_tokens=8)
    out = tower(tokens).numpy()
    assert out.shape == (2, 16)
    one_token = tf.ones([1, 1], tf.int64)  # any length L: a builder's dummy call works
    one = {wordpiece.WORDPIECE_IDS_XF: one_token, wordpiece.WORDPIECE_MASK_XF: one_token}
    assert tower(one).shape == (1, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 1.0], rtol=1e-5)
    assert len(minilm.encoder_variables(tower)) == 16
    assert len(tower.trainable_variables) == 16 + 2  # top layer + projection kernel and bias
    frozen = minilm.build_minilm_text_tower(d=16, trainable_layers=0)
    assert [v.name.split("/")[0] for v in frozen.trainable_variables] == ["projection"] * 2


class _EmbedText(tf.Module):
    def __init__(self, tower, max_tokens):
        super().__init__()
        self.text_tower = tower
        self.tokenizer = wordpiece.WordPieceEncoder(wordpiece.load_vocab(), max_tokens)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed_text(self, caption):
        ids, mask = self.tokenizer(caption)
        inputs = {wordpiece.WORDPIECE_IDS_XF: ids, wordpiece.WORDPIECE_MASK_XF: mask}
        return {"text_embedding": self.text_tower(inputs)}


# Keras traces every layer's call for the SavedModel (about 100 s on 2 shared cores).
@pytest.mark.slow(minutes=2)
def test_raw_text_saved_model_round_trip_and_warm_start(tmp_path):
    tower = minilm.build_minilm_text_tower(d=8)
    captions = tf.constant(["A dog runs on the beach .", ""])
    module = _EmbedText(tower, 16)
    expected = module.embed_text(captions)["text_embedding"].numpy()
    tf.saved_model.save(
        module, str(tmp_path / "model"), signatures={"embed_text": module.embed_text}
    )
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    got = loaded.signatures["embed_text"](caption=captions)["text_embedding"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    fresh = minilm.build_minilm_text_tower(d=8)
    tf.train.Checkpoint(text_tower=fresh).read(str(tmp_path / "model/variables/variables"))
    np.testing.assert_allclose(
        fresh.get_layer("projection").kernel.numpy(), tower.get_layer("projection").kernel.numpy()
    )
