"""The evaluation report (HTML + PNG) written as an artifact next to the Evaluator's output.

``component`` and ``executor`` import TFX; ``data`` and ``render`` do not.
"""
