from __future__ import annotations

import re

import pytest

from lmrl.parsing import answer_region, last_match
from lmrl.secrets import one_line, redact

MOVE = re.compile(r"move (up|down)", re.IGNORECASE)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("move up", "up"),
        ("I could move up, but better: move down", "down"),
        ("Thinking: move down is bad.\nAction: move up", "up"),
        ("**Action:** `move down`", "down"),
        ('> Final answer: "move up"', "up"),
        ("nothing here", None),
    ],
)
def test_last_match_reads_after_the_last_marker(raw, expected):
    found = last_match(MOVE, raw)
    assert (found.group(1).lower() if found else None) == expected


def test_answer_region_blanks_decoration():
    assert "`" not in answer_region("Action: `move up`")


def test_redact_hides_environment_secrets_and_key_shaped_strings(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "not-shaped-like-a-key-123")
    key_shaped = "sk-" + "abcdefgh" * 3  # built here so no key-shaped literal sits in the repository
    text = redact(f"auth failed for not-shaped-like-a-key-123 and {key_shaped}")
    assert "not-shaped" not in text and "sk-abc" not in text and text.count("***") == 2


def test_one_line_is_one_line_and_redacted(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "secret-value-42")
    line = one_line(RuntimeError("bad\nkey secret-value-42\n  here"))
    assert "\n" not in line and "secret-value-42" not in line and line.startswith("RuntimeError: bad")
