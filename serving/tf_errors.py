"""One-line words of a TensorFlow error about a photo, for clients and command lines.

The served graph's byte checks (``trainer.model.image_backbone``) and TensorFlow's decoders fail
with multi-line ``InvalidArgumentError`` messages; a client of TF Serving receives the same text.
"""

from __future__ import annotations

import re


def error_detail(message: str) -> str:
    """The words of a decoding failure in an InvalidArgumentError's message, for one-line errors.

    The served graph's checks fail as ``assertion failed: [image 1 is empty (0 bytes)]`` (or after
    ``Summarized data:`` in a traced function); TensorFlow's own decoders as e.g. ``Invalid JPEG
    data, size 321``. Node names and stack-trace lines around them are dropped.
    """
    marker = "Summarized data:"
    if marker in message:
        message = message.split(marker, 1)[1].strip(" b'\n")
    lines = [line.strip() for line in message.splitlines()]
    prefix = "assertion failed: ["
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix):].rsplit("]", 1)[0]
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    kept = [line for line in lines if line and not line.startswith(noise)] or lines
    return re.sub(r"\s*\[\[\{\{[^}]*\}\}\]\]|\{\{[^}]*\}\}\s*", "", kept[0]).strip()
