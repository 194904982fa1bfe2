"""Indexing and searching a whole photo collection with the pushed encoder.

``python -m pipeline index`` embeds a collection with a Beam job (``job``), builds a ScaNN or
brute-force index (``searcher``) and publishes it as a version (``build``, ``layout``);
``open_index`` (``api``) searches it from Python, ``python -m pipeline search --index`` from the
command line.
"""
