"""A generated block of a docs page: the text between two HTML-comment markers, markers included.

The scripts that keep a page in step with its source (``bench_report.py``: docs/performance.md from
docs/bench.json; ``config_doc.py``: docs/configuration.md from reccore.settings) find and replace it here.
"""

from __future__ import annotations


def block(text: str, begin: str, end: str) -> str:
    """The block of ``text`` from ``begin`` to ``end``; ValueError if the markers are missing."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no generated block between {begin!r} and {end!r}")
    return text[start : stop + len(end)]
