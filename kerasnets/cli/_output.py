"""Printing tables to terminals that may lack Unicode."""

from __future__ import annotations

import sys

_ASCII = {"×": "x", "↳": "->"}


def emit(text: str, stream=None) -> None:
    """Writes ``text``, replacing ``×`` and ``↳`` where the stream's encoding cannot hold them."""
    stream = stream or sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        for char, plain in _ASCII.items():
            text = text.replace(char, plain)
        text = text.encode(encoding, errors="replace").decode(encoding)
    stream.write(text)
    stream.flush()
