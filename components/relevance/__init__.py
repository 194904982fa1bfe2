"""ROUGE-L relevance matrix of the eval split (TERAN's "R"), as a Beam-parallel TFX component."""
