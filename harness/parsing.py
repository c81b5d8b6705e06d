"""One parsing policy for every task: how an action is read from free model output.

Models wrap their answer in prose, markdown, quotes and reasoning, mention moves they reject, and
sometimes name several. Every task reads replies the same way (``read_action``):

a. **A marker line decides.** A line starting with the task's own marker (``Action:``, ``Move:``,
   ``Guess:``, ``Question:``, ...; any case, markdown around it, up to two words before it such as
   ``Final action:`` or ``Next guess:``) holds the answer; the last such line wins. A marker with
   nothing after it takes the next non-empty line.
b. **On that line, the first candidate that is not negated** (``not X``, ``never X``, ``instead of X``,
   ``avoid X``, ``rather than X``, ``don't X``, ``won't X``). A marker line with no candidate is invalid,
   with the task's own reason (``not-in-vocabulary``, ``illegal``, ...) or ``no-action``.
c. **Without a marker**, a reply that *is* a candidate (after trimming quotes, punctuation and
   markdown), or whose final line is one.
d. **Otherwise a single unambiguous candidate** anywhere in the text (not negated; repeats of the same
   action count once). Two different candidates without a marker are invalid as ``ambiguous``; none is
   ``no-action``.

Candidates come from the task's action space (``find``: every span of the text that names an action,
with the canonical action). A task can also read a whole cleaned line as one action (``whole``), which
is where its own invalid reasons come from (a five-letter word outside the vocabulary, an illegal
move). Replies longer than ``max_chars`` are ``too-long``. An invalid reply is an ``Invalid`` with a
reason from ``REASONS``, recorded on the turn and told to the agent in its next observation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

# Why a reply was not understood. Tasks may add their own, in the same style (short, hyphenated).
REASONS: dict[str, str] = {
    "empty": "the reply was empty",
    "no-action": "no valid action was found in it",
    "ambiguous": "it names more than one different action",
    "too-long": "it is too long",
    "not-in-vocabulary": "the word is not in the game's word list",
    "illegal": "that move is not legal in this position",
    "not-a-question": "it does not ask a question",
    "not-allowed": "that action is not possible now",
}


@dataclass(frozen=True, slots=True)
class Invalid:
    """A reply that names no usable action, and why. Falsy, so ``if parsed:`` reads naturally."""

    reason: str
    detail: str = ""

    def __bool__(self) -> bool:
        return False

    def explain(self) -> str:
        """The reason in words, e.g. ``it names more than one different action (move up, move down)``."""
        text = REASONS.get(self.reason, self.reason.replace("-", " "))
        return f"{text} ({self.detail})" if self.detail else text


Parsed = str | Invalid


@dataclass(frozen=True, slots=True)
class Span:
    """A place in a text that names an action: ``text[start:end]`` means ``action``."""

    start: int
    end: int
    action: str


# A line that starts with a marker: optional markdown/list decoration, up to two leading words
# ("Final", "My next"), the marker word, then ":" / "=" / "-" (or a bold close "**Action**:").
_LEAD = r"^[ \t>*_#`~\-+•]*(?:\d+[.)]\s*)?(?:[A-Za-z']+[ \t]+){0,2}?"
_DECORATION = "`*_\"'“”‘’«»[](){}<>~"
_TRIM = " \t\r\n.,;:!?" + _DECORATION
# What a negation may look like right before a candidate (within the same clause).
_NEGATION = re.compile(
    r"(?:\b(?:not|never|no|avoid(?:ing)?|instead\s+of|rather\s+than|won'?t|don'?t|shouldn'?t|"
    r"mustn'?t|can'?t|cannot|wouldn'?t|isn'?t|aren'?t|without|except)\b|n't\b)"
    r"(?:\s+(?:to|be|going|gonna|want|wanna|try|trying|the|a|an|my|that|this|just|even|really|"
    r"(?:play|do|make|choose|pick|say|use|guess|ask|move|go|eat|take|try)(?:ing)?|doing|making|using|"
    r"taking|choosing|moving|going|eating))*\s*$",
    re.IGNORECASE,
)
_IN_WORD_APOSTROPHE = re.compile(r"(?<=[A-Za-z])['’](?=[A-Za-z])")
_NEGATION_TEXT = str.maketrans({c: " " for c in _DECORATION})
_CLAUSE_BREAK = re.compile(r"[.;!?\n]|,\s*(?:but|so|and)\b|\bbut\b|\bso\b")


def marker_pattern(markers: Sequence[str]) -> re.Pattern[str]:
    words = "|".join(re.escape(m).replace(r"\ ", r"\s+") for m in markers)
    # "Question 3:" / "Guess #2:" count too: a number may follow the marker word.
    number = r"(?:[ \t]*(?:#|no\.?)?[ \t]*\d{1,3})?"
    return re.compile(
        _LEAD + rf"(?:{words}){number}[ \t]*[*_`]*[ \t]*(?:[:=]|[\-–—](?=\s))[ \t]*[*_`]*[ \t]*", re.I | re.M
    )


_SEPARATOR = re.compile(r"[:=\-–—]")


@lru_cache(maxsize=64)
def _cached_marker_pattern(markers: tuple[str, ...]) -> re.Pattern[str]:
    return marker_pattern(markers)


def marker_line(raw: str, pattern: re.Pattern[str]) -> str | None:
    """What follows the last marker in ``raw`` up to the end of its line (or the next non-empty line
    when the marker ends its line), or ``None`` when there is no marker."""
    found = None
    for found in pattern.finditer(raw):  # noqa: B007 - the last marker wins
        pass
    if found is None:
        return None
    rest = raw[found.end() :]
    line, _, after = rest.partition("\n")
    if line.strip(_TRIM):
        return line
    for line in after.split("\n"):
        if line.strip(_TRIM):
            return line
    return ""


def clean(text: str) -> str:
    """``text`` with markdown, quotes and outer punctuation removed and whitespace collapsed
    (apostrophes inside words stay: ``it's``)."""
    text = _IN_WORD_APOSTROPHE.sub("\x00", text)
    text = text.translate(str.maketrans({c: " " for c in _DECORATION}))
    return " ".join(text.split()).strip(_TRIM).replace("\x00", "'")


def negated(text: str, start: int) -> bool:
    """Whether the words right before ``start`` (in the same clause) negate what starts there."""
    before = _IN_WORD_APOSTROPHE.sub("\x00", text[max(0, start - 80) : start])  # keep don't, won't
    before = before.translate(_NEGATION_TEXT).replace("\x00", "'")
    breaks = list(_CLAUSE_BREAK.finditer(before))
    if breaks:
        before = before[breaks[-1].end() :]
    return bool(_NEGATION.search(before))


def non_overlapping(spans: Sequence[Span]) -> list[Span]:
    """Spans in text order, a longer span winning over the shorter ones it overlaps
    (``Knight to f3`` is one candidate, not also ``f3``)."""
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def _final_line(raw: str) -> str:
    lines = [line for line in raw.strip().split("\n") if line.strip(_TRIM)]
    return lines[-1] if lines else ""


def read_action(
    raw: str,
    *,
    markers: Sequence[str] | re.Pattern[str],
    find: Callable[[str], Sequence[Span]],
    whole: Callable[[str], Parsed | None] | None = None,
    max_chars: int | None = None,
    none_reason: str = "no-action",
) -> Parsed:
    """Read one action from ``raw`` by the policy above.

    ``find(text)`` lists the spans of ``text`` that name actions; ``whole(cleaned)`` reads a whole
    cleaned line as one action (an action, an ``Invalid`` with the task's reason, or ``None`` when the
    line is not an attempt at one). ``none_reason`` is the reason when nothing at all is found.
    """
    if not raw.isascii():  # full-width letters, ligatures, non-breaking spaces
        raw = unicodedata.normalize("NFKC", raw)
    if not raw or not raw.strip():
        return Invalid("empty")
    if max_chars is not None and len(raw) > max_chars:
        return Invalid("too-long", f"{len(raw):,} characters; at most {max_chars:,}")
    line = None
    if _SEPARATOR.search(raw):  # no marker can match without one (the common terse reply)
        pattern = markers if isinstance(markers, re.Pattern) else _cached_marker_pattern(tuple(markers))
        line = marker_line(raw, pattern)
    if line is not None:  # (a) + (b)
        for span in non_overlapping(find(line)):
            if not negated(line, span.start):
                return span.action
        judged = whole(clean(line)) if whole else None
        if judged is not None:
            return judged
        return Invalid(none_reason, f"nothing usable after the marker: {clean(line)[:60]!r}")
    judged_reply: Parsed | None = None
    if whole is not None:  # (c)
        for text in (raw, _final_line(raw)):
            judged = whole(clean(text))
            if isinstance(judged, str):
                return judged
            judged_reply = judged_reply or judged
    spans = [s for s in non_overlapping(find(raw)) if not negated(raw, s.start)]  # (d)
    actions = list(dict.fromkeys(s.action for s in spans))
    if len(actions) == 1:
        return actions[0]
    if len(actions) > 1:
        shown = ", ".join(actions[:4]) + (", ..." if len(actions) > 4 else "")
        return Invalid("ambiguous", shown)
    if judged_reply is not None:  # e.g. the whole reply is one word outside the vocabulary
        return judged_reply
    return Invalid(none_reason)


def find_phrases(text: str, phrases: dict[str, str]) -> list[Span]:
    """Spans of ``text`` that are any of ``phrases`` (lower case text -> action), as whole words,
    case-insensitive; the longest phrase wins where several overlap."""
    if not phrases:
        return []
    alternatives = sorted(phrases, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![A-Za-z0-9])(?:" + "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in alternatives) + r")"
        r"(?![A-Za-z0-9])",
        re.IGNORECASE,
    )
    spans = []
    for found in pattern.finditer(text):
        key = " ".join(found.group().lower().split())
        if key in phrases:
            spans.append(Span(found.start(), found.end(), phrases[key]))
    return spans


# --- legacy helpers, still used by tasks not yet on ``read_action`` --------------------------------
_LEGACY_MARKER = re.compile(r"(?im)^[\s>*_#`-]*(?:final\s+)?(?:action|move|guess|answer)\s*[:=]\s*")


def answer_region(raw: str) -> str:
    markers = list(_LEGACY_MARKER.finditer(raw))
    region = raw[markers[-1].end() :] if markers else raw
    return region.translate(str.maketrans({c: " " for c in _DECORATION}))


def last_match(pattern: re.Pattern[str], raw: str) -> re.Match[str] | None:
    found = None
    for found in pattern.finditer(answer_region(raw)):  # noqa: B007 - keep the last one
        pass
    return found
