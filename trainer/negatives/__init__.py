"""Where each step's hard negatives come from, beyond the batch.

``strategies`` picks the negatives of a step (in-batch, exact global, bank) from the
configuration; ``global_mining`` scores the whole training set as the current towers embed it,
``embedding_bank`` keeps those embeddings between refreshes, ``head_norms`` scores a bank of a
linear head's inputs through the head, and ``primitive_matmul`` is the matmul they share. The
search itself (``hardest_negatives``, ``best_rows`` with its ``BankScoring``) is ``trainer.mining``.
"""
