"""The shared pieces of the parsing policy (harness/parsing.py), independent of any task."""

from __future__ import annotations

import pytest

from lmrl.parsing import Invalid, Span, clean, marker_line, marker_pattern, negated, non_overlapping

MARKERS = marker_pattern(["action", "move", "question"])


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ("think\nAction: go west", "go west"),
        ("**Final Action:** go west", "go west"),
        ("- **Action**: `go west`", "go west"),
        ("Action:\n\n go west", "go west"),
        ("Question 3: Is it red?", "Is it red"),  # clean() trims the outer punctuation
        ("Action: a\nlater\nACTION = b", "b"),
        ("Move - e4", "e4"),
        ("Move-order matters here", None),  # a hyphenated word is not a marker
        ("no marker at all", None),
    ],
)
def test_marker_lines(raw: str, line: str | None) -> None:
    found = marker_line(raw, MARKERS)
    assert (clean(found) if found is not None else None) == line


@pytest.mark.parametrize(
    ("text", "word", "expected"),
    [
        ("I must not eat it", "eat", True),
        ("I won’t move up", "move up", True),
        ("I won’t play e4", "e4", True),
        ("Avoid 'stone'; try 'range'.", "stone", True),
        ("Avoid 'stone'; try 'range'.", "range", False),
        ("instead of asking that, is it red", "is it red", False),
        ("Not this one, but go west", "go west", False),
        ("No, go west", "go west", False),
        ("rather than going north", "north", True),
    ],
)
def test_negation_is_read_within_the_clause(text: str, word: str, expected: bool) -> None:
    assert negated(text, text.index(word)) is expected


def test_clean_and_overlaps() -> None:
    assert clean("**“it's a cat”**.") == "it's a cat"
    spans = [Span(0, 12, "Nf3"), Span(10, 12, "f3"), Span(20, 22, "e4")]
    assert [s.action for s in non_overlapping(spans)] == ["Nf3", "e4"]
    assert not Invalid("ambiguous") and Invalid("ambiguous", "a, b").explain().endswith("(a, b)")
