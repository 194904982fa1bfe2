"""ROUGE-L relevance matrix of the eval split (TERAN's "R"), as a Beam-parallel TFX component.

The component (``components.relevance.component.Relevance``) imports TFX; ``store`` and
``beam_steps`` do not.
"""
