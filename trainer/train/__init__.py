"""The training loop and what runs around it.

``training`` is the loop (embed, mine, loss, Adam; keep the best epoch), ``optimization`` its
optimizers and learning-rate schedule, ``distribute`` the ``tf.distribute`` strategy from
``TF_CONFIG``, ``warm_start`` loading towers from an earlier model, ``evaluation`` the per-epoch
retrieval metrics, and ``host_speed`` the host's matmul rate that the run reports.
"""
