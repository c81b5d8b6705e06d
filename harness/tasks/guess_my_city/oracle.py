"""Guess My City's oracle role: the built-in ``city-oracle``, what a model in the role is told, the
leakage rule, and how the oracle is measured.

The built-in oracle recognises question types one by one (``_answer``: places and guesses through the
question templates, then the ``TOPICS``); a question it does not recognise, or one whose fact is unknown,
gets ``UNMAPPED_REPLY`` with ``mapped=False``, never a guess. Yes/no answers start with "Yes"/"No" and
restate the fact ("No, it is not in Europe."). A negated question ("Is it not in Asia?", "Isn't it on the
coast?") is answered literally with the fact restated ("No, it is in Asia."), so neither reading of the
yes/no can mislead. Answers never name the city or its country.

``oracle_accuracy(labels)`` scores the oracle on a hand-labelled set (``tests/data/
guess_city_oracle_labels.jsonl``, written from general knowledge, not from the knowledge base).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from lmrl.tasks.guess_my_city.knowledge import CITIES, CITY_INDEX, City, normalize, strip_accents
from lmrl.tasks.guess_my_city.questions import SLOT_LEAD, clean, question_core, resolve, slots
from lmrl.tasks.guess_my_city.topics import (
    LANGUAGES,
    SPORT_WORDS,
    TOPICS,
    UNSURE,
    OracleReply,
    join_names,
    yes_no_reply,
)

REDACTED = "[redacted]"

_AUX = r"(?:is|are|does|do|did|was|were|has|have|can|could|would|will)"
_YES_NO_START = re.compile(rf"^{_AUX}\b")
# Open questions whose answer is a description ("What is a famous dish?"), not a measure ("How tall").
_OPEN_START = re.compile(
    r"^(?:what|which|name|tell|describe|give|list|recommend|any|whats|where|(?:can|could) you "
    r"(?:tell|name|describe|give|recommend))\b"
)
_SUBJECT = r"(?:it|the city|your city|this city|that city|the place|you|they|people|there|the people|locals)"
_NEGATED_CONTRACTION = re.compile(rf"^(\W*{_AUX})n['’]?t\b", re.I)
_NEGATED_NOT = re.compile(rf"^(\W*{_AUX}\s+{_SUBJECT})\s+not\b", re.I)


def _place_answer(kind: str, value: Any, slot_kind: str, city: City, index: int) -> OracleReply:
    if kind == "city":
        return yes_no_reply(value == index, "Yes, that is my city.", "No, that is not my city.")
    if kind == "country":
        return yes_no_reply(
            value == city.country, "Yes, it is in that country.", "No, it is not in that country."
        )
    if kind == "region":
        return yes_no_reply(
            value == city.region,
            "Yes, it is in that province or state.",
            "No, it is not in that province or state.",
        )
    if kind == "continent":
        inside = any(c in city.continents for c in value)
        label = "the Americas" if len(value) > 1 else value[0]
        return yes_no_reply(inside, f"Yes, it is in {label}.", f"No, it is not in {label}.")
    # area
    inside = city.area in value or (value == ("Middle East",) and city.country == "Egypt")
    label = " or ".join("the Middle East" if v == "Middle East" else v for v in value)
    return yes_no_reply(inside, f"Yes, it is in {label}.", f"No, it is not in {label}.")


def _alternatives(slot: str, city: City) -> str | None:
    """ "Is it in Asia or Europe?" -> names the one that holds (continents and areas only)."""
    parts = [p.strip() for p in re.split(r"\s*(?:,|\bor\b)\s*", slot) if p.strip()]
    if len(parts) < 2:
        return None
    resolved = [(p, resolve(SLOT_LEAD.sub("", p))) for p in parts]
    if not all(r is not None and r[0] in ("continent", "area") for _, r in resolved):
        return None
    for _, (kind, value) in resolved:  # type: ignore[misc]
        if kind == "continent" and any(c in city.continents for c in value) and len(value) == 1:
            return f"It is in {value[0]}."
        if kind == "area" and city.area in value:
            return f"It is in {city.area}."
    return "Neither."


_LAST_WORD_CAPITALIZED = re.compile(r"(?:^|\s)[A-Z][^\s]*\W*$")  # "... from Osaka?" but not "... from here?"
_NOT_NAME_START = frozenset(
    {"in", "on", "near", "at", "by", "a", "an", "close", "part", "located", "not", "far"}
    | {"north", "south", "east", "west"}
)


def _looks_like_a_name(slot: str, core: str) -> bool:
    words = slot.split()
    return (
        0 < len(words) <= 3
        and words[0] not in _NOT_NAME_START
        and slot not in LANGUAGES
        and not SPORT_WORDS.search(slot)
        and bool(_LAST_WORD_CAPITALIZED.search(core))
    )


def oracle_answer(question: str, city: City, turn: int = 0) -> OracleReply:
    """The built-in oracle's answer to ``question`` for ``city`` (``turn`` picks which landmark or
    dish it mentions). It never names the city or its country."""
    return _oracle_answer(question, CITY_INDEX[city.name], turn % 2)  # the KB holds two of each


@lru_cache(maxsize=1 << 17)
def _oracle_answer(question: str, index: int, turn: int) -> OracleReply:
    core = question_core(question) or question
    positive = _NEGATED_NOT.sub(r"\1", _NEGATED_CONTRACTION.sub(r"\1", core, count=1), count=1)
    if positive == core:
        return _answer(core, CITIES[index], index, turn)
    # Negated: answer the positive question, then flip the leading yes/no; the restated fact keeps
    # the answer unambiguous ("Is it not in Asia?" -> "No, it is in Asia.").
    reply = _answer(positive, CITIES[index], index, turn)
    flipped = re.sub(r"^(Yes|No)\b", lambda m: "No" if m.group(1) == "Yes" else "Yes", reply.text)
    if not reply.mapped or flipped == reply.text:
        return UNSURE
    return OracleReply(flipped)


def _answer(core: str, city: City, index: int, turn: int) -> OracleReply:
    q = clean(normalize(core))
    if not q:
        return UNSURE
    yes_no = bool(_YES_NO_START.match(q)) or q.startswith(("isnt", "arent", "doesnt"))
    is_open = bool(_OPEN_START.match(q))

    # Location, identity and guesses: "Is it in X?", "Are you from X?", "Is it X?", "X?".
    for slot_kind, slot in slots(core):
        place = resolve(slot)
        if place is not None:
            return _place_answer(place[0], place[1], slot_kind, city, index)
        if slot_kind in ("loc", "ident") and (alt := _alternatives(slot, city)):
            return OracleReply(alt)
        if slot_kind in ("guess", "ident") and _looks_like_a_name(slot, core):
            return OracleReply("No, that is not my city.")  # "Is it Osaka?": a city we do not know

    if re.search(r"\b(?:which|what) country\b|\bname of (?:the|your) country\b|\bwhat is your country\b", q):
        return OracleReply("I can't tell you the country, but you can ask me yes-or-no questions about it.")
    if re.search(
        r"\b(?:which|what) city (?:are|do|is)\b|\bname of (?:the|your) city\b|\bwhat is your city$", q
    ):
        return OracleReply("That is what you have to find out!")

    for topic in TOPICS:
        reply = topic(q, city, yes_no, is_open, turn)
        if reply is not None:
            return reply
    if re.search(r"\bwhere\b|\bpart of the world\b|\bregion of the world\b|\b(?:which|what) region\b", q):
        return OracleReply(f"It is in {city.area}.")
    return UNSURE


def oracle_facts(city: City) -> str:
    """The city's facts as plain sentences, for a model oracle's system prompt."""

    def known(value: bool | None) -> str:
        return "not sure" if value is None else ("yes" if value else "no")

    river = {None: "not sure", False: "none of note"}.get(city.river, city.river)  # type: ignore[arg-type]
    lines = [
        f"City: {city.name}" + (f" (also called {', '.join(city.variants)})" if city.variants else ""),
        f"Country: {city.country}" + (f"; province/state: {city.region}" if city.region else ""),
        f"Continent: {join_names(city.continents)}; part of the world: {city.area}",
        f"Hemispheres: {'northern' if city.latitude > 0 else 'southern'}, "
        f"{'eastern' if city.longitude > 0 else 'western'}",
        f"Population: about {max(1, round(city.population / 1e6))} million",
        f"National capital: {'yes' if city.capital else 'no'}",
        f"On the coast: {'yes' if city.coastal else 'no'}; seaport: {known(city.port)}",
        f"River: {river}; mountains nearby: {known(city.mountains)}; metro: {known(city.metro)}",
        f"Languages: {join_names(city.languages)}",
        f"Climate: {city.climate}; snow in winter: {'yes' if city.snow else 'no'}",
        f"Landmarks: {'; '.join(city.landmarks)}",
        f"Dishes: {'; '.join(city.dishes)}",
        f"Sports: {', '.join(city.sports)}" + (f"; teams: {city.teams}" if city.teams else ""),
        f"Industry: {city.industry}",
        f"History: {city.history}",
        f"Festival: {city.festival}",
    ]
    return "\n".join(lines)


def oracle_messages(city: City, dialogue: Sequence[tuple[str, str]], question: str) -> list[dict[str, str]]:
    """The chat prompt for a model playing the oracle: facts + rules, the dialogue so far, the question."""
    forbidden = ", ".join(dict.fromkeys(city.secret_names))
    system = (
        "You are playing Guess My City. You are from the city below, and the other player asks you "
        "questions to find out which city it is.\n"
        f"{oracle_facts(city)}\n"
        "Answer each question truthfully in one or two short sentences, as a resident would; use your own "
        "knowledge of the city where the facts above say nothing. Never write the name of the city or of "
        f"the country, nor any other name for them ({forbidden}). If a question names them, answer yes or "
        "no without repeating the name. If the question guesses a different city, say no."
    )
    messages = [{"role": "system", "content": system}]
    for asked, answered in dialogue:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    messages.append({"role": "user", "content": question})
    return messages


# --- measuring the oracle ------------------------------------------------------------------------
_FIRST_WORD = re.compile(r"[\W_]*([A-Za-z]+)")


def polarity(text: str) -> bool | None:
    """True for an answer starting with yes, False for one starting with no, else None."""
    found = _FIRST_WORD.match(text)
    word = found.group(1).lower() if found else ""
    if word in ("yes", "yeah", "yep", "correct", "indeed"):
        return True
    if word in ("no", "nope", "not", "neither", "incorrect"):
        return False
    return None


def load_labels(path: Path | str) -> list[dict[str, Any]]:
    """A labelled set: one JSON object a line, ``{"city", "category", "question", "answer"}``.

    ``answer`` is ``"yes"`` / ``"no"`` (the literal truth of the question, negated ones included: "Is
    it not in Asia?" about Tokyo is ``"no"``), ``{"any": [...]}`` (an open question: a right answer
    contains one of these, case and accents ignored) or ``"unsure"`` (outside what the oracle knows:
    the only right reply is not sure)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def judge(label: dict[str, Any], reply: OracleReply) -> bool:
    """Whether a mapped ``reply`` is right by ``label``'s rule (see ``load_labels``)."""
    want = label["answer"]
    if want == "unsure":
        return not reply.mapped
    if isinstance(want, dict):
        text = strip_accents(reply.text).lower()
        return any(strip_accents(key).lower() in text for key in want["any"])
    return polarity(reply.text) is (want == "yes")


def oracle_accuracy(labels: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The built-in oracle on a labelled set: ``accuracy`` (right answers among mapped ones, "unsure"
    labels included: answering one is wrong), ``mapped`` (how many it answered), ``unmapped_share``
    (share of labels it was not sure about; on "unsure" labels that is right), ``wrong`` (the mapped
    answers that are wrong) and ``by_category`` (accuracy and count per label category)."""
    labels = list(labels)
    mapped = 0
    right = 0
    unsure = 0
    wrong: list[dict[str, Any]] = []
    by_category: dict[str, list[int]] = {}
    for label in labels:
        reply = oracle_answer(label["question"], CITIES[CITY_INDEX[label["city"]]])
        tally = by_category.setdefault(label.get("category", ""), [0, 0, 0])
        tally[2] += 1
        if not reply.mapped:
            unsure += 1
            if label["answer"] != "unsure":
                continue
        else:
            mapped += 1
            tally[1] += 1
        ok = judge(label, reply)
        if reply.mapped:
            right += ok
            tally[0] += ok
            if not ok:
                wrong.append({**label, "reply": reply.text})
    return {
        "accuracy": right / mapped if mapped else 1.0,
        "mapped": mapped,
        "labels": len(labels),
        "unmapped_share": unsure / len(labels) if labels else 0.0,
        "wrong": wrong,
        "by_category": {
            cat: {"accuracy": r / m if m else 1.0, "mapped": m, "labels": n}
            for cat, (r, m, n) in sorted(by_category.items())
        },
    }


# --- leakage -------------------------------------------------------------------------------------
_ACRONYM = re.compile(r"(?:[A-Z]\.?){2,5}")


@lru_cache(maxsize=4096)
def _name_pattern(name: str) -> re.Pattern[str]:
    """A pattern for ``name`` in accent-stripped text: word-bounded, tolerant of punctuation between
    its words ("St Petersburg", "Xi an"); all-capital acronyms ("US", "LA") match case-sensitively."""
    if _ACRONYM.fullmatch(name):
        letters = [re.escape(ch) for ch in name if ch != "."]
        return re.compile(r"(?<![A-Za-z0-9])" + r"\.?".join(letters) + r"\.?(?![A-Za-z0-9])")
    words = re.findall(r"[A-Za-z0-9]+", strip_accents(name))
    if words and words[0].lower() in ("st", "saint"):
        words[0] = "(?:st|saint)"
        body = r"[\s.'’\-]*".join([words[0], *map(re.escape, words[1:])])
    else:
        body = r"[\s.'’\-]*".join(map(re.escape, words))
    return re.compile(r"(?<![A-Za-z0-9])" + body + r"(?![A-Za-z0-9])", re.IGNORECASE)


def leaked_names(text: str, city: City) -> list[str]:
    """The names of ``city`` or of its country (any variant) that ``text`` mentions, in KB order.

    Case- and accent-insensitive whole-word matching ("Chinese" does not name China); acronyms such
    as "US" or "LA" only count in capitals. This is the rule behind the leakage judge.
    """
    plain = strip_accents(text)
    found: list[str] = []
    for name in dict.fromkeys(city.secret_names):
        if _name_pattern(name).search(plain):
            found.append(name)
    return found


def redact(text: str, city: City) -> str:
    """``text`` with every mention of the city's or country's names replaced by ``[redacted]``.

    Accents are removed from the whole text when something is redacted."""
    if not leaked_names(text, city):
        return text
    plain = strip_accents(text)
    for name in sorted(dict.fromkeys(city.secret_names), key=len, reverse=True):
        plain = _name_pattern(name).sub(REDACTED, plain)
    return plain


RUBRIC_ORACLE_FAITHFULNESS = (
    "This is a game of Guess My City: the agent asks questions, the environment lines are the answers "
    "of an oracle who is from a secret city (the final environment line names it). Rate the ORACLE, not "
    "the agent, on faithfulness: every answer is true of the secret city, responds to the question "
    "asked, agrees with the other answers, and never names the city or its country (or other names for "
    "them) before the agent guessed it. 1 = answers are false, evasive or reveal the city or country; "
    "3 = mostly true but vague, partly off-topic or inconsistent; 5 = every answer is true, relevant, "
    "consistent and non-revealing."
)


def leak_judge_rule(episode: Any) -> float | None:
    """Rule judge: how many oracle answers in a finished ``guess-my-city`` episode leaked a name."""
    if "leaks" in episode.info:
        return float(episode.info["leaks"])
    if not episode.turns:
        return None
    return float(sum(1 for turn in episode.turns if turn.info.get("leak")))
