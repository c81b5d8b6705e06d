"""The twenty-questions environment: the agent's question read from its reply, the rules of a turn on
top of the shared question-game skeleton (``lmrl.tasks.question_game``), and the policy measurements.
The rules are in the package docstring."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from lmrl.parsing import Invalid, Parsed, Span, clean
from lmrl.rollout import episode_stats
from lmrl.task import Anchors, InvalidTaskOption, Policy, StepResult
from lmrl.tasks.question_game import (
    MAX_QUESTION_CHARS,
    MAX_QUESTIONS,
    YES_NO_VERBS,
    QuestionGame,
    has_letters,
    play_against_oracle,
    read_question,
    too_long,
    unsure_answers,
)
from lmrl.tasks.registry import register_task
from lmrl.tasks.twenty_questions.knowledge import (
    KB,
    OBJECTS,
    KBObject,
    find_object,
    guess_target,
    is_correct_guess,
)
from lmrl.tasks.twenty_questions.oracle import (
    NO,
    NOT_SURE,
    YES,
    kb_answer,
    oracle_messages,
    parse_oracle_reply,
)
from lmrl.tasks.twenty_questions.policies import (
    behavior_policy,
    kb_oracle_policy,
    optimal_policy,
    random_policy,
)

KB_ORACLE = "kb-oracle"
INTRO = (
    "I am thinking of an everyday object. Ask yes/no questions to find out what it is; I answer each "
    f'with "Yes." or "No." (or "{NOT_SURE}"). You have {MAX_QUESTIONS} questions.'
)
# The paper's categories and their sizes (§5.1); the knowledge base must match them.
PAPER_CATEGORY_COUNTS: dict[str, int] = {
    "Sports": 10,
    "Animals": 10,
    "Fruits": 10,
    "Vehicles": 10,
    "Clothes": 11,
    "Electronics": 10,
    "Musical Instruments": 10,
    "Furniture": 10,
    "Office Supplies": 14,
    "Vegetables": 10,
    "Art": 7,
    "Kitchen Tools": 10,
    "Nature": 11,
    "Toys": 5,
    "Jewelry": 9,
    "Garden Supplies": 5,
    "Tools": 6,
}
CATEGORIES: tuple[str, ...] = tuple(KB.categories)


# --- reading the agent's question (lmrl.tasks.question_game.read_question) -----------------------
# Where a sentence (and so a candidate question) can start: a new line, after sentence punctuation, or
# at an opening quote or bracket ('I'll ask "Is it alive?"').
_SENTENCE_START = re.compile(r"\n|[.!?;:](?=\s)|[\"“«(\[]")
_IN_WORD_APOSTROPHE = re.compile(r"(?<=\w)['’](?=\w)")
_CONTRACTION = re.compile(r"\b(\w+) (s|t|d|ll|re|ve|m)\b")
_LIST_MARK = re.compile(r"^(?:\d+[.)]|[-+•])\s*")
_INTERROGATIVE = re.compile(rf"^(?:{YES_NO_VERBS}|must)\s+\w", re.IGNORECASE)
_MULTI_SENTENCE = re.compile(r"[.!?;:]\s+\S")
_NOT_QUESTION = re.compile(
    r"^(?:yes|no|nope|yep|ok|okay|sure|pass|none|nothing|n a|correct|wrong|thanks|thank you)$|"
    r"^(?:it|this|that|there|we|you|they|he|she)\b",
    re.IGNORECASE,
)
_GUESS_STATEMENT = re.compile(r"^(?:i\s+(?:think|guess|believe)|my\s+(?:final\s+)?guess)\b", re.IGNORECASE)


def _question(text: str) -> str | None:
    """``text`` as a canonical question: markdown, quotes and list marks gone, one "?" at the end; ``None``
    when it has no letters or is longer than ``MAX_QUESTION_CHARS``."""
    text = _IN_WORD_APOSTROPHE.sub("\x00", text)  # clean() would split "it's" into "it s"
    text = _LIST_MARK.sub("", clean(text)).strip().replace("\x00", "'")
    if not has_letters(text) or len(text) > MAX_QUESTION_CHARS:
        return None
    return text + "?"


def _find_questions(text: str) -> list[Span]:
    """Every sentence of ``text`` that ends with "?", from its start to the "?"."""
    starts = [m.end() for m in _SENTENCE_START.finditer(text)]
    spans = []
    for mark in re.finditer(r"\?+", text):
        start = max((s for s in starts if s <= mark.start()), default=0)
        question = _question(text[start : mark.end()])
        if question is not None:
            offset = len(text[start:]) - len(text[start:].lstrip())
            spans.append(Span(start + offset, mark.end(), question))
    return spans


def _whole_bare(text: str) -> Parsed | None:
    """A reply (or its last line) without a marker and without "?" is a question only when it is one
    sentence that starts like one ("Is it an animal")."""
    if _MULTI_SENTENCE.search(text) or not _INTERROGATIVE.match(text):
        return None
    return _question(text)


def _whole_marked(text: str) -> Parsed | None:
    """What follows a marker, without "?": an interrogative sentence, or a short guess ("Guess: a
    basketball", "Guess: I think it's a cat"); "Question: No." or a statement is not a question."""
    if not text:
        return None
    if len(text) > MAX_QUESTION_CHARS:
        return too_long(text)
    if _INTERROGATIVE.match(text) or (_GUESS_STATEMENT.match(text) and len(text.split()) <= 8):
        return _question(text)
    if _NOT_QUESTION.match(text) or len(text.split()) > 6 or _MULTI_SENTENCE.search(text):
        return Invalid("not-a-question", text[:60])
    return _question(text)


def parse_question(raw: str) -> Parsed:
    """The question in a model's reply, or why there is none (package docstring)."""
    parsed = read_question(raw, find=_find_questions, whole=_whole_bare, whole_after_marker=_whole_marked)
    if isinstance(parsed, str):  # read_action cleans a whole line, which turns "it's" into "it s"
        parsed = _CONTRACTION.sub(
            lambda m: f"{m[1]}'{m[2]}" if re.search(rf"\b{m[1]}['’]{m[2]}\b", raw) else m[0], parsed
        )
    return parsed


# --- the environment -----------------------------------------------------------------------------
@register_task
class TwentyQuestions(QuestionGame):
    name: ClassVar[str] = "twenty-questions"
    version: ClassVar[str] = "2"
    description: ClassVar[str] = (
        "Find the everyday object (158 in 17 categories) with at most 20 yes/no questions to an oracle."
    )
    anchors: ClassVar[Anchors] = Anchors(min=-20.0, avg=-17.3, max=-12.6, source="paper Table 5")
    roles: ClassVar[dict[str, str]] = {"oracle": f"scripted/{KB_ORACLE}"}
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "behavior": behavior_policy,
        "optimal": optimal_policy,
        KB_ORACLE: kb_oracle_policy,
    }

    @classmethod
    def secret_of(cls, info: dict[str, Any]) -> Any:
        return find_object(str(info.get("secret", "")))

    @classmethod
    def names_secret(cls, question: str, secret: Any) -> bool:
        return is_correct_guess(question, secret)

    answer_example: ClassVar[str] = "Question: Is it an animal?"
    intro: ClassVar[str] = INTRO
    oracle_policy: ClassVar[str] = KB_ORACLE
    secrets: ClassVar[tuple[KBObject, ...]] = OBJECTS
    secret_strata: ClassVar[tuple[str, ...]] = tuple(o.category for o in OBJECTS)
    secret: KBObject

    def __init__(self, secret: str = "index", **options: Any) -> None:
        super().__init__(**options)
        key = str(secret).strip()
        if key.lower() in ("index", "random"):
            self.secret_mode = key.lower()
        else:
            found = find_object(key)
            if found is None:
                raise InvalidTaskOption(
                    f'secret must be "index", "random" or the name of one of the {len(OBJECTS)} objects, '
                    f"not {secret!r}"
                )
            self.secret_mode, self.fixed_secret = found.name, found
        self.random_secret = self.secret_mode == "random"

    def start(self, secret: KBObject) -> None:
        super().start(secret)
        self.parse_failures = 0
        self.invalid = 0
        self.guesses = 0
        self.named_secret = False
        self.oracle_kind = "kb"

    def builtin_reply(self, question: str) -> str:
        return kb_answer(question, self.secret).text

    def oracle_prompt(self, question: str) -> list[dict[str, str]]:
        return oracle_messages(self.secret, question)

    def unreadable(self) -> StepResult:
        # Answered "No." without asking the oracle, as the paper's "invalid question" sentinel was.
        self.invalid += 1
        return self.question_spent(NO, {"question": None, "answer": NO, "questions": self.turn}, invalid=True)

    def answered(self, question: str, reply: str, model: bool) -> StepResult:
        info: dict[str, Any] = {"question": question, "questions": self.turn}
        kb = kb_answer(question, self.secret)
        if model:
            self.oracle_kind = "model"
            answer, failed = parse_oracle_reply(reply)
            self.parse_failures += failed
            info.update(
                oracle="model",
                oracle_parse_failed=failed,
                oracle_reply=reply[:200],
                kb_answer=kb.text if kb.mapped else None,
            )
        else:
            answer = reply.strip() if reply.strip() in (YES, NO, NOT_SURE) else parse_oracle_reply(reply)[0]
            info["oracle"] = "kb"
            self.note_mapped(info, kb.mapped)
            info["attribute"] = kb.attribute
        target = guess_target(question)
        correct = is_correct_guess(question, self.secret)
        self.guesses += target is not None or correct
        self.named_secret |= correct
        info.update(answer=answer, guess=target.name if target else None, correct_guess=correct)
        self.dialogue.append((question, answer))
        self.pending_question = None
        if correct and answer == YES:  # success needs the rule's match and the oracle's "Yes."
            return self.guessed(answer, info)
        return self.question_spent(answer, info)

    def reveal(self) -> str:
        return f"The object was {self.secret.label}."

    def parse(self, raw: str) -> Parsed:
        return parse_question(raw)

    def episode_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "secret": self.secret.name,
            "category": self.secret.category,
            "questions": self.turn,
            "guessed": self.named_secret,
            "guesses": self.guesses,
            "invalid_questions": self.invalid,
            "oracle": self.oracle_kind,
        }
        if self.oracle_kind == "kb":
            info["unmapped_questions"] = self.unmapped
        else:
            info["oracle_parse_failures"] = self.parse_failures
        return info

    def options(self) -> dict[str, Any]:
        return {"secret": self.secret_mode}

    def system_prompt(self) -> str:
        categories = ", ".join(c.lower() for c in CATEGORIES)
        return (
            "Let's play twenty questions. I am thinking of an everyday object; it belongs to one of these "
            f"categories: {categories}. Find it by asking yes/no questions, one per turn. I answer every "
            f'question with "Yes." or "No.", or "{NOT_SURE}" when I cannot tell.\n'
            'To guess, ask whether it is that object, e.g. "Is it a basketball?": a guess counts only if the '
            'question names the object itself, not something related ("Is it a ball?" or "Is it used in '
            'basketball?" are ordinary questions).\n'
            'Every question costs -1. The question that names the object and gets "Yes." costs 0 and ends '
            f"the game. After {MAX_QUESTIONS} questions the game is over.\n"
            "Ask exactly one yes/no question per turn. You may think first. " + self.final_line_instruction()
        )


def secret_index(index: int) -> int:
    """The object episode ``index`` plays: a stratified permutation, so any first N episodes cover the
    categories in proportion (the first 17 hit all 17) and 158 consecutive ones from 0 play every object."""
    return TwentyQuestions.secret_for_episode(index)


def measure_policy(
    policy: str = "behavior", episodes: int = 2 * len(OBJECTS), seed: int = 0, secret: str = "index"
) -> dict[str, float]:
    """Play ``policy`` against the kb-oracle for indices 0..episodes-1 (``rollout``, no I/O) and return
    the success rate, mean and std of the return, and mean length. ``measure_policy("behavior")`` is how
    ``BEHAVIOR_SMART_P`` was tuned (158 x 2 episodes)."""
    return episode_stats(play_against_oracle(TwentyQuestions(secret=secret), policy, episodes, seed))


def behaviour_unmapped_share(episodes: int = len(OBJECTS), seed: int = 0) -> dict[str, float]:
    """How often the kb-oracle is not sure (cannot map the question, or cannot decide it for the secret)
    on the behaviour policy's own questions, over ``episodes`` episodes against the kb-oracle."""
    found = unsure_answers(play_against_oracle(TwentyQuestions(), "behavior", episodes, seed))
    return {key: found[key] for key in ("questions", "unmapped", "unmapped_share")}
