"""The Trainer's input: the Transform output as tables in memory or as a stream.

``data`` loads a transformed split into tables ordered by caption id, ``stream_input`` streams
a split too large for ``trainer.memory_budget_gb``, ``frozen_prefix`` caches the frozen MiniLM
layers' output once per caption, and ``training_rows`` is what a training step reads.
"""
