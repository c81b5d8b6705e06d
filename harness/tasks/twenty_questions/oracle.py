"""The twenty-questions oracle role: the built-in ``kb-oracle`` and what a model in the role is told.

* ``kb_answer``: ``Yes.``/``No.`` for a question the interpreter (``questions.interpret``) maps and the
  knowledge base decides, ``I'm not sure.`` (``NOT_SURE``, flagged ``mapped=False``) otherwise: the
  oracle never passes off a guess as an answer. A correct guess is always ``Yes.``.
* ``oracle_accuracy(labels)`` measures it against a hand-labelled set (``tests/data/
  twenty_questions_oracle_labels.jsonl``): accuracy on the mapped questions and the unmapped share.
* A model in the oracle role gets ``oracle_messages``; ``parse_oracle_reply`` reads its reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from lmrl.tasks.twenty_questions.knowledge import OBJECTS, KBObject, find_object, is_correct_guess, normalize
from lmrl.tasks.twenty_questions.questions import interpret

YES, NO = "Yes.", "No."
NOT_SURE = "I'm not sure."


class OracleAnswer(NamedTuple):
    """``yes`` is the answer when ``mapped``; an unmapped question is answered ``NOT_SURE``."""

    yes: bool
    mapped: bool
    attribute: str | None

    @property
    def text(self) -> str:
        return (YES if self.yes else NO) if self.mapped else NOT_SURE


def kb_answer(question: str, obj: KBObject) -> OracleAnswer:
    """The kb-oracle's answer about ``obj``: a correct guess is always ``Yes.``; a question it cannot map,
    or one the KB cannot decide for ``obj`` (about the same size), is ``I'm not sure.`` with
    ``mapped=False`` (``attribute`` then says what it recognised, if anything)."""
    if is_correct_guess(question, obj):
        return OracleAnswer(True, True, f"name:{obj.name}")
    meaning = interpret(question)
    if meaning.predicate is None:
        return OracleAnswer(False, False, None)
    value = meaning.predicate(obj)
    return OracleAnswer(bool(value), value is not None, meaning.attribute)


@lru_cache(maxsize=16384)
def yes_mask(question: str) -> int:
    """Bit ``i`` is set when the kb-oracle answers ``Yes.`` about ``OBJECTS[i]`` (for the policies)."""
    return sum(1 << obj.index for obj in OBJECTS if kb_answer(question, obj).yes)


def oracle_accuracy(labels: Iterable[dict[str, str]]) -> dict[str, float]:
    """The kb-oracle against hand labels (``{"object", "question", "answer": "yes"|"no"}``): accuracy on
    the questions it answers, how many it answers, the share it is not sure about, and the wrong answers
    it gave (``wrong``, each "object | question")."""
    total = mapped = right = 0
    wrong: list[str] = []
    for label in labels:
        obj = find_object(label["object"])
        if obj is None:
            raise KeyError(f"no object {label['object']!r} in the knowledge base")
        total += 1
        answer = kb_answer(label["question"], obj)
        if not answer.mapped:
            continue
        mapped += 1
        if answer.yes == (label["answer"] == "yes"):
            right += 1
        else:
            wrong.append(f"{obj.name} | {label['question']} -> {answer.text} ({answer.attribute})")
    return {
        "labels": total,
        "mapped": mapped,
        "accuracy": right / mapped if mapped else 0.0,
        "unmapped_share": (total - mapped) / total if total else 0.0,
        "wrong": wrong,  # type: ignore[dict-item]
    }


# --- a model in the oracle role ------------------------------------------------------------------
def oracle_messages(obj: KBObject, question: str) -> list[dict[str, str]]:
    """The chat a model oracle sees: the object and the rules as the system prompt, the question."""
    also = f" (also called: {', '.join(obj.variants)})" if obj.variants else ""
    system = (
        "You are the oracle in a game of twenty questions. The secret object is: "
        f"{obj.name.lower()}{also}, an everyday object from the category {obj.category.lower()}. "
        "The player asks yes/no questions to find it. Answer each question truthfully about the secret "
        'object with exactly one word, "Yes." or "No.", and nothing else. If the question names the secret '
        '(or one of its other names), answer "Yes.". If a question cannot be answered with yes or no, '
        'answer "No.". Never reveal the object and never explain.'
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{question}\nAnswer with Yes. or No."},
    ]


_REPLY_YES = re.compile(
    r"^(?:yes|yeah|yea|yep|yup|ya|aye|correct|right|true|affirmative|indeed|sure|of\s+course|"
    r"(?:definitely|absolutely|certainly|probably|likely|mostly|usually|generally|typically|often|sometimes)"
    r"(?!\s+not)\b(?:\s+yes)?|it\s+(?:is|does|can|has)\b(?!\s*n)|that\s+is\s+(?:right|correct))\b"
)
_REPLY_NO = re.compile(
    r"^(?:no|nope|nah|nay|not|never|incorrect|wrong|false|negative|"
    r"(?:definitely|absolutely|certainly|probably|usually|generally|mostly)\s+not|"
    r"it\s+(?:is|does|can|has)\s*n\s*t|it\s+(?:is|does|can|has)\s+not|its\s+not|isnt|doesnt|cant|hasnt)\b"
)
_ANSWER_MARKER = re.compile(r"\banswer\s+(?:is\s+)?(yes|no)\b")


def parse_oracle_reply(reply: str) -> tuple[str, bool]:
    """A model oracle's reply as ``"Yes."`` or ``"No."`` and whether it could not be read.

    The start of the reply decides ("Yes, it is" / "Nope" / "Definitely not" / "It is not"); else an
    "answer: yes|no" marker; else a reply mentioning only one of yes/no; anything else is ``No.`` with
    the failure flag set (the paper's oracle mapped unreadable output to "No." too)."""
    text = normalize(reply)
    text = re.sub(r"^(?:(?:oracle|answer|a|reply|response)\s+)+", "", text)
    if _REPLY_NO.match(text):
        return NO, False
    if _REPLY_YES.match(text):
        return YES, False
    marker = _ANSWER_MARKER.search(text)
    if marker:
        return (YES if marker.group(1) == "yes" else NO), False
    words = set(text.split())
    has_yes, has_no = bool(words & {"yes", "yep", "yeah"}), bool(words & {"no", "nope"})
    if has_yes != has_no:
        return (YES if has_yes else NO), False
    return NO, True


RUBRIC_ORACLE_FAITHFULNESS = (
    "This is a game of twenty questions: the agent asks yes/no questions about a secret everyday object "
    'and the environment lines are the oracle\'s answers, each "Yes." or "No.". The secret is named in '
    "the final environment line when the agent ran out of questions; otherwise the agent's last question, "
    'answered "Yes.", names it. Rate the ORACLE, not the agent, on faithfulness: is every answer true of '
    "the secret object as most people would judge it, and consistent with the other answers? Questions "
    'that are ambiguous or not yes/no questions may fairly get "No.". 1 = many answers are false or '
    "contradict each other; 3 = mostly true, with a few clearly wrong answers; 5 = every answer is true "
    "of the object."
)
