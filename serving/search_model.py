"""The search SavedModel: pushed text/image encoder + gallery index → top-k, servable end to end.

Signatures (``k`` fixed at export; outputs ``ids`` string, ``scores`` float32 and ``captions``
string, each of the input's batch shape plus ``[k]``):

| name | input | ``ids`` are |
| --- | --- | --- |
| ``search`` | ``caption`` string [] or [N] | image ids |
| ``search_images`` | ``image_features`` float32 [N, D] | image ids |
| ``search_captions`` | ``caption`` string [] or [N] | caption ids |
| ``search_by_image`` | ``image_bytes`` string [] or [N] (encoded JPEG/PNG) | image ids |
| ``search_captions_by_image`` | ``image_bytes`` string [] or [N] | caption ids |

``captions`` is the display text: an image's first caption, or the matched caption's text.
``search_captions`` and ``search_captions_by_image`` exist only when the index holds captions;
the two ``*_by_image`` signatures only when the encoder has ``embed_image_bytes`` (its image
features are the in-graph backbone's). Bad image bytes (empty, not a JPEG/PNG, truncated, too
many pixels) fail the request with INVALID_ARGUMENT naming the item; the model keeps serving.
A features-mode encoder (its ``embed_text`` takes ``caption_features``, not text) cannot embed
a typed query, so its search model has no text signatures. The gallery lives in variables
(not graph constants); the index files travel in ``assets.extra/gallery`` for Python users, and
``assets.extra/tf_serving_warmup_requests`` warms TF Serving up on load.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import wire
from serving.contract import text_input_of
from serving.gallery import GalleryIndex, save_index
from serving.layout import INDEX_SUBDIR, SEARCH_MODEL_SUFFIX
from serving.savedmodel import load_saved_model
from serving.search import DEFAULT_CHUNK_SIZE, chunked_top_k
from trainer import features

SEARCH_SIGNATURE = "search"
SEARCH_IMAGES_SIGNATURE = "search_images"
SEARCH_CAPTIONS_SIGNATURE = "search_captions"
SEARCH_BY_IMAGE_SIGNATURE = "search_by_image"
SEARCH_CAPTIONS_BY_IMAGE_SIGNATURE = "search_captions_by_image"
IDS_OUTPUT = "ids"
SCORES_OUTPUT = "scores"
CAPTIONS_OUTPUT = "captions"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
WARMUP_QUERY = "a dog runs on the beach"


def search_model_name(model_name: str) -> str:
    """The served name of ``model_name``'s search model (``<model_name>_search``)."""
    return model_name + SEARCH_MODEL_SUFFIX


class _Gallery(tf.Module):
    """One searchable collection: unit rows [N, d], ids [N] and display texts [N]."""

    def __init__(self, embeddings, ids, texts, name: str):
        super().__init__(name=name)
        self.embeddings = tf.Variable(embeddings, trainable=False, name="embeddings")
        self.ids = tf.Variable(ids.astype(object), trainable=False, dtype=tf.string, name="ids")
        self.texts = tf.Variable(texts.astype(object), trainable=False, dtype=tf.string,
                                 name="texts")

    def top_k(self, queries: tf.Tensor, batch_shape: tf.Tensor, k: int,
              chunk_size: int) -> dict[str, tf.Tensor]:
        """Searches queries [Q, d]; reshapes outputs to ``batch_shape + [k]``."""
        scores, indices = chunked_top_k(queries, self.embeddings, k, chunk_size)
        shape = tf.concat([batch_shape, [tf.shape(scores)[1]]], axis=0)
        return {
            IDS_OUTPUT: tf.reshape(tf.gather(self.ids, indices), shape),
            SCORES_OUTPUT: tf.reshape(scores, shape),
            CAPTIONS_OUTPUT: tf.reshape(tf.gather(self.texts, indices), shape),
        }


class SearchModule(tf.Module):
    """Encoder + gallery; see the module docstring for the signatures.

    Args:
        encoder_dir: the pushed encoder SavedModel (contract signatures).
        index: the gallery, embedded by that encoder.
        k: results per query.
        chunk_size: gallery rows scored at once.
        loaded: ``load_saved_model(encoder_dir)`` when the caller has it (one load).

    """

    def __init__(self, encoder_dir: str, index: GalleryIndex, k: int = 10,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, loaded: tf.Module | None = None):
        super().__init__(name="gallery_search")
        self.encoder = loaded if loaded is not None else load_saved_model(encoder_dir)
        self.k, self.chunk_size = k, chunk_size
        self.images = _Gallery(index.image_embeddings, index.image_ids, index.image_captions,
                               "images")
        self.captions = (_Gallery(index.caption_embeddings, index.caption_ids,
                                  index.caption_texts, "captions")
                         if len(index.caption_ids) else None)

    def _embed_text(self, caption: tf.Tensor) -> tf.Tensor:
        """Captions [N] → unit rows [N, d] with the pushed encoder."""
        embed = self.encoder.signatures[features.EMBED_TEXT_SIGNATURE]
        return embed(**{features.CAPTION_KEY: caption})[features.TEXT_EMBEDDING_OUTPUT]

    def text_search_function(self, gallery: _Gallery) -> tf.types.experimental.ConcreteFunction:
        """A concrete function: caption(s) [] or [N] → top-k of ``gallery`` ([k] or [N, k])."""

        # No AutoGraph in the search signatures: their loops unroll over Python ranges, and
        # converting the encoder's calls would only slow the trace.
        @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name=features.CAPTION_KEY)],
                     autograph=False)
        def search(caption: tf.Tensor) -> dict[str, tf.Tensor]:
            queries = self._embed_text(tf.reshape(caption, [-1]))
            return gallery.top_k(queries, tf.shape(caption), self.k, self.chunk_size)

        return search.get_concrete_function()

    def image_bytes_search_function(
            self, gallery: _Gallery) -> tf.types.experimental.ConcreteFunction:
        """A concrete function: encoded image(s) [] or [N] → top-k of ``gallery``."""
        embed = self.encoder.signatures[features.EMBED_IMAGE_BYTES_SIGNATURE]

        @tf.function(input_signature=[
            tf.TensorSpec(None, tf.string, name=features.IMAGE_BYTES_INPUT)], autograph=False)
        def search(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
            queries = embed(**{features.IMAGE_BYTES_INPUT: tf.reshape(image_bytes, [-1])})
            return gallery.top_k(queries[features.IMAGE_EMBEDDING_OUTPUT],
                                 tf.shape(image_bytes), self.k, self.chunk_size)

        return search.get_concrete_function()

    def search_images_function(self, feature_dim: int) -> tf.types.experimental.ConcreteFunction:
        """The ``search_images`` concrete function for image features [N, ``feature_dim``]."""
        embed = self.encoder.signatures[features.EMBED_IMAGE_SIGNATURE]

        @tf.function(input_signature=[tf.TensorSpec([None, feature_dim], tf.float32,
                                                     name=features.IMAGE_FEATURES_KEY)],
                     autograph=False)
        def search_images(image_features: tf.Tensor) -> dict[str, tf.Tensor]:
            queries = embed(**{features.IMAGE_FEATURES_KEY: image_features})
            return self.images.top_k(queries[features.IMAGE_EMBEDDING_OUTPUT],
                                     tf.shape(image_features)[:1], self.k, self.chunk_size)

        return search_images.get_concrete_function()


def _image_feature_dim(encoder: tf.Module) -> int:
    """D from the encoder's ``embed_image`` input spec."""
    signature = encoder.signatures[features.EMBED_IMAGE_SIGNATURE]
    dim = signature.structured_input_signature[1][features.IMAGE_FEATURES_KEY].shape[-1]
    if dim is None:
        raise ValueError("the encoder's embed_image signature does not fix the feature width D")
    return int(dim)


def write_search_model(encoder_dir: str, index: GalleryIndex, export_dir: str, k: int = 10,
                       chunk_size: int = DEFAULT_CHUNK_SIZE,
                       loaded: tf.Module | None = None) -> str:
    """Exports the search SavedModel (and the index files) to ``export_dir``; returns it.

    ``loaded`` is ``load_saved_model(encoder_dir)`` when the caller has it (one load).

    Raises:
        ValueError: k < 1.

    """
    if k < 1:
        raise ValueError(f"search k must be >= 1, got {k}")
    module = SearchModule(encoder_dir, index, k, chunk_size, loaded)
    feature_dim = _image_feature_dim(module.encoder)
    signatures = {SEARCH_IMAGES_SIGNATURE: module.search_images_function(feature_dim)}
    takes_text = text_input_of(module.encoder, encoder_dir)[0] == features.CAPTION_KEY
    if takes_text:
        signatures[SEARCH_SIGNATURE] = module.text_search_function(module.images)
    if takes_text and module.captions is not None:
        signatures[SEARCH_CAPTIONS_SIGNATURE] = module.text_search_function(module.captions)
    if features.EMBED_IMAGE_BYTES_SIGNATURE in module.encoder.signatures:
        signatures[SEARCH_BY_IMAGE_SIGNATURE] = module.image_bytes_search_function(module.images)
        if module.captions is not None:
            signatures[SEARCH_CAPTIONS_BY_IMAGE_SIGNATURE] = module.image_bytes_search_function(
                module.captions)
    tf.saved_model.save(module, export_dir, signatures=signatures)
    save_index(index, os.path.join(export_dir, INDEX_SUBDIR))
    write_warmup_requests(export_dir, None if takes_text else feature_dim)
    return export_dir


def write_warmup_requests(export_dir: str, image_feature_dim: int | None = None) -> str:
    """Writes TF Serving's warm-up file: one request, replayed when a version loads.

    TF Serving reads ``assets.extra/tf_serving_warmup_requests`` (TFRecord of ``PredictionLog``)
    and runs each request before serving the version, so the first user query does not pay for
    graph initialization. A request to a signature the model lacks fails the load, so a model
    without ``search`` (features mode) is warmed up with ``search_images``.

    Args:
        export_dir: the search SavedModel.
        image_feature_dim: D: warm up ``search_images`` with one zero row instead of ``search``.

    Returns:
        The file's path.

    """
    if image_feature_dim is None:
        request = wire.grpc_predict_request(
            "", SEARCH_SIGNATURE, {features.CAPTION_KEY: np.asarray([WARMUP_QUERY], dtype=object)})
    else:
        request = wire.grpc_predict_request(
            "", SEARCH_IMAGES_SIGNATURE,
            {features.IMAGE_FEATURES_KEY: np.zeros((1, image_feature_dim), np.float32)})
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))
    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())
    return path


def result_rows(out: dict[str, tf.Tensor], k: int, model_dir: str) -> list[tuple[str, float, str]]:
    """The first ``k`` ``(id, score, caption)`` rows of a search signature's [k'] outputs.

    Raises:
        ValueError: ``k`` exceeds the k' the model was exported with.

    """
    available = int(out[IDS_OUTPUT].shape[0])
    if k > available:
        raise ValueError(f"asked for k={k} results, {model_dir} returns at most {available}")
    rows = zip(out[IDS_OUTPUT].numpy()[:k], out[SCORES_OUTPUT].numpy()[:k],
               out[CAPTIONS_OUTPUT].numpy()[:k], strict=True)
    return [(i.decode("utf-8"), float(s), c.decode("utf-8")) for i, s, c in rows]
