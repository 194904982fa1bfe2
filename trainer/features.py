"""The feature contract: the one module that names features (see docs/architecture.md).

Raw features are what the caption ExampleGen writes (one tf.Example per caption). Transformed
features are what the Transform ``preprocessing_fn`` emits and the Trainer reads.
"""

# --- Raw tf.Example features (one example per caption) ---
IMAGE_ID_KEY = "image_id"  # bytes: stable image identifier (file name); groups captions
CAPTION_ID_KEY = "caption_id"  # bytes: stable caption identifier, e.g. "IMAGE.jpg#2"
CAPTION_KEY = "caption"  # bytes: raw caption text, UTF-8
IMAGE_FEATURES_KEY = "image_features"  # float list, fixed length D
CAPTION_FEATURES_KEY = "caption_features"  # float list, fixed length (optional)

ID_KEYS = (IMAGE_ID_KEY, CAPTION_ID_KEY)
REQUIRED_RAW_KEYS = (IMAGE_ID_KEY, CAPTION_ID_KEY, CAPTION_KEY, IMAGE_FEATURES_KEY)
OPTIONAL_RAW_KEYS = (CAPTION_FEATURES_KEY,)


def transformed_name(key: str) -> str:
    """Returns the name of the Transform output derived from raw feature ``key``."""
    return f"{key}_xf"


# --- Transformed features (Transform output, Trainer input) ---
CAPTION_TOKENS_XF = transformed_name("caption_tokens")  # int64 [L]: padded token ids
CAPTION_LENGTH_XF = transformed_name("caption_length")  # int64 []: true length (<= L)
IMAGE_FEATURES_XF = transformed_name(IMAGE_FEATURES_KEY)  # float32 [D]: scaled features
CAPTION_FEATURES_XF = transformed_name(CAPTION_FEATURES_KEY)  # float32 [D_c]: scaled, optional
# WordPiece ids / attention mask for the pretrained MiniLM text tower (only when Transform's
# ``wordpiece_max_tokens`` is set): int64 [L_wp], [CLS] ... [SEP] then 0-padding.
CAPTION_WORDPIECE_IDS_XF = transformed_name("caption_wordpiece_ids")
CAPTION_WORDPIECE_MASK_XF = transformed_name("caption_wordpiece_mask")
# The ids pass through Transform unchanged, under their raw names.

# --- Output splits written by the caption ExampleGen ---
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
TEST_SPLIT = "test"
SPLITS = (TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT)

# --- Exported SavedModel signatures and their tensors (docs/architecture.md) ---
SERVING_DEFAULT_SIGNATURE = "serving_default"
EMBED_TEXT_SIGNATURE = "embed_text"
EMBED_IMAGE_SIGNATURE = "embed_image"
# Encoded JPEG/PNG bytes [N] -> IMAGE_EMBEDDING_OUTPUT, through the in-graph image backbone.
EMBED_IMAGE_BYTES_SIGNATURE = "embed_image_bytes"
IMAGE_BYTES_INPUT = "image_bytes"
EXAMPLES_INPUT = "examples"
IMAGE_EMBEDDING_OUTPUT = "image_embedding"
TEXT_EMBEDDING_OUTPUT = "text_embedding"

# --- embed_image_bytes' input: what a photo must be (clients check it before sending) ---
# PIL's decompression-bomb limit, the image featurizer's default too.
DEFAULT_MAX_PIXELS = 89_478_485
# The leading bytes of the two formats the graph decodes.
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# What a complete file holds after its pixel data. The decoders' own errors about cut-off data
# cannot name the item of a batch, so their absence is checked first. In a JPEG the pair 0xFFD9
# only occurs as a marker (entropy-coded 0xFF bytes are followed by 0x00).
JPEG_END = b"\xff\xd9"
PNG_END = b"IEND"
