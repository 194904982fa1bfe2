from trainer import features


def test_raw_keys_match_the_design_contract():
    assert features.REQUIRED_RAW_KEYS == ("image_id", "caption_id", "caption", "image_features")
    assert features.OPTIONAL_RAW_KEYS == ("caption_features",)


def test_transformed_names_are_distinct_from_raw_names():
    xf = {
        features.CAPTION_TOKENS_XF,
        features.CAPTION_LENGTH_XF,
        features.IMAGE_FEATURES_XF,
        features.CAPTION_FEATURES_XF,
        features.CAPTION_WORDPIECE_IDS_XF,
        features.CAPTION_WORDPIECE_MASK_XF,
    }
    assert len(xf) == 6
    assert not xf & set(features.REQUIRED_RAW_KEYS + features.OPTIONAL_RAW_KEYS)
    assert features.transformed_name("image_features") == "image_features_xf"
