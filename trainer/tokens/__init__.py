"""Caption text to model input: normalisation, token ids, WordPiece.

``text`` normalises and splits captions with core TensorFlow string ops, ``wordpiece`` runs the
MiniLM WordPiece tokenizer (TF-Text), ``transform_config`` holds the Transform's settings.
``trainer.preprocessing.preprocessing_fn`` puts them together in the Transform graph.
"""
