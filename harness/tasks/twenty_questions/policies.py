"""The scripted players of twenty-questions: three questioners and the built-in oracle.

``random`` (generic questions from ``QUESTION_BANK`` mixed with random guesses), ``behavior`` (the
dataset-generating questioner: keeps the objects consistent with the answers, asks the best-splitting
bank question with probability ``BEHAVIOR_SMART_P`` and otherwise a random one, and guesses a random
remaining candidate when few remain; tuned against the kb-oracle to the paper's dataset success rate
0.31), ``optimal`` (always the best split, guessing when at most 2 candidates remain; an upper
reference) and ``kb-oracle`` (the oracle role's policy).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from lmrl.tasks.twenty_questions.knowledge import OBJECTS, KBObject, load_question_bank
from lmrl.tasks.twenty_questions.oracle import NO, YES, kb_answer, yes_mask

if TYPE_CHECKING:
    from lmrl.tasks.twenty_questions.env import TwentyQuestions

# Generic yes/no questions the scripted questioners choose from; every one maps to KB attributes.
QUESTION_BANK: tuple[str, ...] = load_question_bank()

BEHAVIOR_SMART_P = 0.06  # chance the behavior questioner asks the best-splitting question
BEHAVIOR_RANDOM_GUESS_P = 0.2  # chance a "random" behavior turn is a guess at a random object
BEHAVIOR_GUESS_AT = 2  # the behavior questioner guesses once this few candidates remain
OPTIMAL_GUESS_AT = 2  # the optimal questioner guesses once this few candidates remain
RANDOM_GUESS_P = 0.25  # share of guesses among the random policy's questions
_ALL = (1 << len(OBJECTS)) - 1


def candidate_mask(task: TwentyQuestions) -> int:
    """Objects consistent with every answer so far (bit i = OBJECTS[i]). An answer that would leave no
    candidate (an oracle contradicting the KB) is skipped, so the set is never empty."""
    mask = _ALL
    for question, answer in task.dialogue:
        if answer not in (YES, NO):
            continue  # "I'm not sure." tells nothing
        yes = yes_mask(question)
        narrowed = mask & (yes if answer == YES else ~yes)
        if narrowed:
            mask = narrowed
    return mask


def _members(mask: int) -> list[KBObject]:
    return [obj for obj in OBJECTS if mask >> obj.index & 1]


def best_question(mask: int, asked: set[str]) -> str | None:
    """The unasked bank question whose yes/no split of the candidates is most even (first in bank order
    on ties); ``None`` when no question splits them."""
    total = mask.bit_count()
    best, best_score = None, 0
    for question in QUESTION_BANK:
        if question in asked:
            continue
        yes = (yes_mask(question) & mask).bit_count()
        score = min(yes, total - yes)
        if score > best_score:
            best, best_score = question, score
    return best


def _asked(task: TwentyQuestions) -> set[str]:
    return {question for question, _ in task.dialogue}


def random_policy(task: TwentyQuestions, rng: random.Random) -> str:
    if rng.random() < RANDOM_GUESS_P:
        return rng.choice(OBJECTS).guess_question()
    return rng.choice(QUESTION_BANK)


def optimal_policy(task: TwentyQuestions, rng: random.Random) -> str:
    """Greedy best split; guesses (in KB order) once at most ``OPTIMAL_GUESS_AT`` candidates remain."""
    mask = candidate_mask(task)
    asked = _asked(task)
    candidates = [o for o in _members(mask) if o.guess_question() not in asked]
    if candidates and len(candidates) <= OPTIMAL_GUESS_AT:
        return candidates[0].guess_question()
    question = best_question(mask, asked)
    if question is None:
        return (candidates or list(OBJECTS))[0].guess_question()
    return question


def behavior_policy(task: TwentyQuestions, rng: random.Random) -> str:
    """The dataset-generating questioner (module docstring): mostly random bank questions and some random
    guesses, the best split with probability ``BEHAVIOR_SMART_P``, and a guess at a random remaining
    candidate once at most ``BEHAVIOR_GUESS_AT`` remain."""
    mask = candidate_mask(task)
    asked = _asked(task)
    candidates = [o for o in _members(mask) if o.guess_question() not in asked]
    if candidates and len(candidates) <= BEHAVIOR_GUESS_AT:
        return rng.choice(candidates).guess_question()
    if rng.random() < BEHAVIOR_SMART_P:
        question = best_question(mask, asked)
        if question is not None:
            return question
    if rng.random() < BEHAVIOR_RANDOM_GUESS_P:
        return rng.choice(OBJECTS).guess_question()
    unasked = [q for q in QUESTION_BANK if q not in asked]
    return rng.choice(unasked or list(QUESTION_BANK))


def kb_oracle_policy(task: TwentyQuestions, rng: random.Random) -> str:
    """The built-in oracle (role ``oracle``): the KB's answer to the pending question."""
    if task.pending_question is None:
        return NO
    return kb_answer(task.pending_question, task.secret).text
