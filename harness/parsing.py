"""Tolerant extraction of actions from free model output, shared by every task's ``parse``.

Models wrap answers in prose, markdown, quotes and reasoning. The rule used everywhere: if the output
has a marker line (``Action: ...``, ``Move: ...``, ``Guess: ...``, ``Answer: ...``), look only after the
last marker; otherwise look at the whole output. Within that text, the *last* match wins, because
models reason first and answer last.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"(?im)^[\s>*_#`-]*(?:final\s+)?(?:action|move|guess|answer)\s*[:=]\s*")
_DECORATION = str.maketrans({c: " " for c in "`*_\"'“”‘’«»[](){}<>"})


def answer_region(raw: str) -> str:
    """The part of ``raw`` an action should be read from, with markdown and quotes blanked out."""
    markers = list(_MARKER.finditer(raw))
    region = raw[markers[-1].end() :] if markers else raw
    return region.translate(_DECORATION)


def last_match(pattern: re.Pattern[str], raw: str) -> re.Match[str] | None:
    """The last match of ``pattern`` in the answer region of ``raw``."""
    found = None
    for found in pattern.finditer(answer_region(raw)):  # noqa: B007 - keep the last one
        pass
    return found
