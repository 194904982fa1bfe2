"""TFServingPusher: pushes the blessed encoder and its gallery search model to TF Serving."""
