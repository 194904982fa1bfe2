"""The two towers and what they are made of, and the SavedModel they are exported as.

``towers`` builds the image and text towers from a ``TrainerConfig``; ``minilm`` (with
``minilm_weights`` and ``pretrained``) is the pretrained MiniLM text encoder, ``unpadded`` runs
its fine-tuned layers on a batch's real tokens and ``precision`` decides where they compute in
bfloat16; ``image_backbone`` and ``tflite_graph`` are the MobileNetV2 behind
``embed_image_bytes``; ``export`` writes the serving ``tf.Module``.
"""
