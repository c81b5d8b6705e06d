"""The scripted players of Guess My City: three questioners and the built-in oracle.

``random`` (random questions and random guesses), ``behavior`` (a knowledge-base questioner that mixes
informative yes/no questions with chit-chat; tuned to the paper's dataset statistics), ``optimal``
(greedy best-split yes/no questions, guessing when at most 3 cities remain; the paper's oracle reduced
every answer to yes/no, so this is the 20-questions reading of the game), and ``city-oracle`` (the
built-in oracle, used by the ``oracle`` role).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from lmrl.tasks.guess_my_city.knowledge import CITIES, CITY_INDEX, CLIMATES
from lmrl.tasks.guess_my_city.oracle import oracle_answer, polarity
from lmrl.tasks.question_game import MAX_QUESTIONS

if TYPE_CHECKING:
    from lmrl.tasks.guess_my_city.env import GuessMyCity

GUESS_TEMPLATE = "Is the city you are from {}?"


def _attribute_questions() -> tuple[str, ...]:
    """Yes/no questions the knowledge-base policies ask; the built-in oracle answers each with yes or no."""
    continents = ("Asia", "Africa", "Europe", "North America", "South America", "Oceania")
    questions = [f"Is it in {c}?" for c in continents]
    areas = dict.fromkeys(c.area for c in CITIES if c.area not in ("North America", "Oceania"))
    questions += [f"Is it in the {a}?" if a == "Middle East" else f"Is it in {a}?" for a in areas]
    questions += [f"Is it in {country}?" for country in dict.fromkeys(c.country for c in CITIES)]
    questions += [f"Is it in {region}?" for region in dict.fromkeys(c.region for c in CITIES if c.region)]
    questions += [
        "Is it the capital of its country?",
        "Is it on the coast?",
        "Is it in the northern hemisphere?",
        "Is it east of the prime meridian?",
        "Is it in the tropics?",
        "Does it snow there in winter?",
        "Are winters cold there?",
    ]
    questions += [f"Is the climate {c}?" for c in CLIMATES]
    languages = dict.fromkeys(x for c in CITIES for x in c.languages)
    questions += [f"Do people there speak {lang}?" for lang in languages]
    questions += [f"Do more than {n} million people live there?" for n in (4, 5, 6, 7, 8, 10, 12, 15)]
    return tuple(questions)


ATTRIBUTE_QUESTIONS: tuple[str, ...] = _attribute_questions()
_ATTRIBUTE_SET = frozenset(ATTRIBUTE_QUESTIONS)
# Chit-chat in the style of the paper's generated dialogues; the knowledge-base policies do not learn
# from the answers (open answers about sights or food would identify the city at once).
CHAT_QUESTIONS: tuple[str, ...] = (
    "What is a famous landmark in your city?",
    "What is a traditional dish from your city?",
    "What is the weather like there?",
    "What language do people speak there?",
    "Which continent is it on?",
    "How many people live there?",
    "Is it near the sea?",
    "What sport is popular there?",
    "Is there a famous sports team?",
    "What is the main industry?",
    "Is public transport good there?",
    "Does it have a metro?",
    "Are there mountains nearby?",
    "Is there a river running through it?",
    "Is it a port city?",
    "Is it an old city?",
    "Is it hot in summer?",
    "What festivals are celebrated there?",
    "When was it founded?",
    "What is the city famous for?",
)


@cache
def _yes_mask(question: str) -> int:
    """Bit i is set when the built-in oracle answers ``question`` with yes for city i."""
    return sum(1 << i for i in range(len(CITIES)) if polarity(oracle_answer(question, CITIES[i]).text))


_ALL = (1 << len(CITIES)) - 1


def _alive_mask(dialogue: Sequence[tuple[str, str]]) -> int:
    alive = _ALL
    for question, answer in dialogue:
        if question in _ATTRIBUTE_SET:
            said = polarity(answer)
            if said is None:
                continue
            kept = alive & (_yes_mask(question) if said else ~_yes_mask(question))
            alive = kept or alive
        elif question.startswith("Is the city you are from "):
            guessed = CITY_INDEX.get(question.removeprefix("Is the city you are from ").removesuffix("?"))
            if guessed is not None and alive != 1 << guessed:
                alive &= ~(1 << guessed)
    return alive


def candidates(dialogue: Sequence[tuple[str, str]]) -> list[int]:
    """Indices of the cities consistent with the yes/no answers to knowledge-base questions so far.

    Only ``ATTRIBUTE_QUESTIONS`` and wrong guesses (``GUESS_TEMPLATE``) are used; an answer that is
    neither yes nor no, or one that no remaining city would give (a model oracle's mistake), is ignored.
    """
    alive = _alive_mask(dialogue)
    return [i for i in range(len(CITIES)) if alive >> i & 1]


def _guess(index: int) -> str:
    return GUESS_TEMPLATE.format(CITIES[index].name)


def random_policy(task: GuessMyCity, rng: random.Random) -> str:
    """Random questions from both banks; a random city guess 15% of the time."""
    if rng.random() < 0.15:
        return _guess(rng.randrange(len(CITIES)))
    return rng.choice(CHAT_QUESTIONS + ATTRIBUTE_QUESTIONS)


# Tuned so that against ``city-oracle`` the success rate and mean length land near the paper's dataset
# (Table 1: success 0.53, mean length 18.8); measured over 1000 stratified episodes: success 0.532,
# length 18.6, return -18.1 (tests/test_guess_my_city.py pins a band).
BEHAVIOR_INFORMED_P = 0.3
BEHAVIOR_GUESS_AT = 1


def behavior_policy(task: GuessMyCity, rng: random.Random) -> str:
    """A slow knowledge-base questioner, standing in for the paper's dataset generator.

    With probability ``BEHAVIOR_INFORMED_P`` it asks the optimal policy's best-splitting yes/no
    question, otherwise chit-chat from ``CHAT_QUESTIONS`` not asked yet (it ignores the answers). It
    guesses once at most ``BEHAVIOR_GUESS_AT`` cities remain, and on its last question guesses one of
    the remaining cities.
    """
    alive = _alive_mask(task.dialogue)
    if alive.bit_count() <= BEHAVIOR_GUESS_AT or task.turn == MAX_QUESTIONS - 1:
        return _guess(rng.choice([i for i in range(len(CITIES)) if alive >> i & 1]))
    if rng.random() < BEHAVIOR_INFORMED_P:
        return _best_split(alive)
    asked = {question for question, _ in task.dialogue}
    return rng.choice([q for q in CHAT_QUESTIONS if q not in asked] or CHAT_QUESTIONS)


def optimal_policy(task: GuessMyCity, rng: random.Random) -> str:
    """Greedy best split: the yes/no question whose answer divides the possible cities most evenly;
    guess (the most populous) once at most 3 remain, where guessing is at least as good as splitting."""
    alive = _alive_mask(task.dialogue)
    size = alive.bit_count()
    if size <= 3:
        return _guess((alive & -alive).bit_length() - 1)  # the lowest index = the most populous
    return _best_split(alive)


def _best_split(alive: int) -> str:
    size = alive.bit_count()
    best, best_gap = ATTRIBUTE_QUESTIONS[0], size + 1
    for question in ATTRIBUTE_QUESTIONS:
        gap = abs(2 * (alive & _yes_mask(question)).bit_count() - size)
        if gap < best_gap:
            best, best_gap = question, gap
    return best


def city_oracle_policy(task: GuessMyCity, rng: random.Random) -> str:
    """The built-in oracle as a scripted partner: answers ``task.pending_question`` about the city."""
    return oracle_answer(task.pending_question or "", task.secret, task.turn).text
