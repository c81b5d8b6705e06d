"""The Guess My City environment: the agent's question read from its reply, the rules of a turn on top
of the shared question-game skeleton (``lmrl.tasks.question_game``), and the policy measurement. The
rules are in the package docstring."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar

from lmrl.options import flag_option
from lmrl.parsing import Parsed, Span, clean
from lmrl.task import Anchors, InvalidTaskOption, Policy, StepResult
from lmrl.tasks.guess_my_city.knowledge import CITIES, CITY_INDEX, City, normalize
from lmrl.tasks.guess_my_city.oracle import (
    leaked_names,
    oracle_answer,
    oracle_messages,
    redact,
)
from lmrl.tasks.guess_my_city.policies import (
    behavior_policy,
    city_oracle_policy,
    optimal_policy,
    random_policy,
)
from lmrl.tasks.guess_my_city.questions import is_correct_guess, names_city, sentences
from lmrl.tasks.guess_my_city.topics import UNMAPPED_REPLY
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

INTRO = (
    "I am from one of the 100 most populous cities in the world. Ask me questions to find out which one. "
    f'To guess, ask "Is the city you are from X?". You have {MAX_QUESTIONS} questions.'
)
INVALID_OBSERVATION = "Please ask me one question about my city."


# --- reading the agent's question (lmrl.tasks.question_game.read_question) -----------------------
# How a question (or a request such as "Tell me about the food") starts.
_ASKING = re.compile(
    rf"^(?:{YES_NO_VERBS}|"
    r"what|whats|which|who|whom|whose|where|when|why|how|isnt|arent|doesnt|dont|didnt|wasnt|"
    r"tell me|describe|name|give me)\b"
)
_REQUESTS = ("tell me", "describe", "name", "give me")
_LEAD_IN = re.compile(r"^.*(?:[:—–]\s+|[\"“‘«]\s*)", re.DOTALL)  # 'I will ask: "' before a question


def _question_spans(text: str) -> list[Span]:
    """Every question in ``text``: the sentence (within one line) ending at each "?", without what
    introduces it ("I'd ask: ..."); sentences of ``MAX_QUESTION_CHARS`` or more do not count."""
    spans = []
    for line in re.finditer(r"[^\n]+", text):
        previous = 0
        for mark in re.finditer(r"\?+", line.group()):
            segment = line.group()[previous : mark.end()]
            parts = sentences(segment)
            start = previous + (segment.rfind(parts[-1]) if parts else 0)
            previous = mark.end()
            body = line.group()[start : mark.end()]
            lead = _LEAD_IN.match(body[:-1])
            if lead:
                start += lead.end()
            question = clean(line.group()[start : mark.end()])
            if has_letters(question) and len(question) < MAX_QUESTION_CHARS:
                spans.append(Span(line.start() + start, line.start() + mark.end(), question + "?"))
    return spans


@lru_cache(maxsize=4096)
def _bare_city(text: str) -> bool:
    """Whether ``text`` is only a city's name ("Tokyo", "Tokyo, Japan"): a guess without a verb."""
    key = normalize(text)
    return 0 < len(key.split()) <= 5 and any(names_city(key, i) for i in range(len(CITIES)))


def _whole_question(text: str) -> Parsed | None:
    """A whole cleaned line (or reply) read as one question: one sentence that asks something, or a
    bare city name; ``None`` when it is not one (a statement, "No", several sentences)."""
    if re.search(r"[?!]|[.;]\s", text):
        return None  # several sentences: left to the question spans
    lowered = normalize(text)
    if _ASKING.match(lowered):
        if len(text) >= MAX_QUESTION_CHARS:
            return too_long(text)
        return text if lowered.startswith(_REQUESTS) else text + "?"
    if _bare_city(text):
        return text
    return None


def parse_question(raw: str) -> Parsed:
    """The question in a model's reply, or ``Invalid`` with the reason (see the package docstring)."""
    return read_question(raw, find=_question_spans, whole=_whole_question)


# --- the environment -----------------------------------------------------------------------------
VERSION = "2"  # 2: stratified city order, the shared parsing policy, the measured oracle


@register_task
class GuessMyCity(QuestionGame):
    name: ClassVar[str] = "guess-my-city"
    version: ClassVar[str] = VERSION
    description: ClassVar[str] = (
        "Guess My City: find which of the 100 most populous cities the oracle is from, "
        "in at most 20 questions."
    )
    anchors: ClassVar[Anchors] = Anchors(
        min=-20.0, avg=-18.8, max=-8.56, source="paper Table 5; the origin of max (-8.56) is not explained"
    )
    roles: ClassVar[dict[str, str]] = {"oracle": "scripted/city-oracle"}
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "behavior": behavior_policy,
        "optimal": optimal_policy,
        "city-oracle": city_oracle_policy,
    }

    @classmethod
    def secret_of(cls, info: dict[str, Any]) -> Any:
        index = CITY_INDEX.get(str(info.get("city", "")))
        return None if index is None else CITIES[index]

    @classmethod
    def names_secret(cls, question: str, secret: Any) -> bool:
        return is_correct_guess(question, secret)

    answer_example: ClassVar[str] = "Question: Is your city in Europe?"
    intro: ClassVar[str] = INTRO
    oracle_policy: ClassVar[str] = "city-oracle"
    secrets: ClassVar[tuple[City, ...]] = CITIES
    secret_strata: ClassVar[tuple[str, ...]] = tuple(c.area for c in CITIES)  # parts of the world
    secret: City

    def __init__(
        self,
        city_order: str = "sweep",
        redact_leaks: bool | str = True,
        show_cities: bool | str = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if city_order not in ("sweep", "random"):
            raise InvalidTaskOption(f"city_order must be sweep or random, not {city_order!r}")
        self.city_order = city_order
        self.random_secret = city_order == "random"
        self.redact_leaks = flag_option("redact_leaks", redact_leaks)
        self.show_cities = flag_option("show_cities", show_cities)

    @property
    def city(self) -> City:
        return self.secret

    def start(self, secret: City) -> None:
        super().start(secret)
        self.leaks = 0

    def builtin_reply(self, question: str) -> str:
        return oracle_answer(question, self.secret, self.turn).text

    def oracle_prompt(self, question: str) -> list[dict[str, str]]:
        return oracle_messages(self.secret, self.dialogue, question)

    def unreadable(self) -> StepResult:
        return self.question_spent(INVALID_OBSERVATION, {"questions": self.turn}, invalid=True)

    def guess_settled(self, question: str) -> StepResult | None:
        # The question alone decides a guess: a confused or lying oracle cannot deny a right one.
        if not is_correct_guess(question, self.secret):
            return None
        city = self.secret
        where = city.name if city.name == city.country else f"{city.name}, {city.country}"
        return self.guessed(f"Yes! I am from {where}.", {"questions": self.turn})

    def answered(self, question: str, reply: str, model: bool) -> StepResult:
        answer = reply.strip()
        info: dict[str, Any] = {"questions": self.turn}
        self.note_mapped(info, answer != UNMAPPED_REPLY)
        leaked = leaked_names(answer, self.secret)
        if leaked:
            self.leaks += 1
            info.update(leak=True, leaked=leaked)
            if self.redact_leaks:
                answer = redact(answer, self.secret)
        self.dialogue.append((question, answer))
        return self.question_spent(answer, info)

    def reveal(self) -> str:
        return f"I am from {self.secret.name}, {self.secret.country}."

    def parse(self, raw: str) -> Parsed:
        return parse_question(raw)

    def episode_info(self) -> dict[str, Any]:
        return {
            "city": self.secret.name,
            "country": self.secret.country,
            "city_rank": self.secret.rank,
            "questions": self.turn,
            "leaks": self.leaks,
            "unmapped": self.unmapped,
        }

    def options(self) -> dict[str, Any]:
        return {
            "city_order": self.city_order,
            "redact_leaks": self.redact_leaks,
            "show_cities": self.show_cities,
        }

    def system_prompt(self) -> str:
        listing = ""
        if self.show_cities:
            listing = "The possible cities: " + "; ".join(f"{c.name} ({c.country})" for c in CITIES) + ".\n"
        return (
            "You are playing Guess My City. The other player is from one of the 100 most populous cities "
            "in the world and answers your questions without naming the city or its country. Find the city "
            "with as few questions as possible: every question costs 1 point; the game ends when you guess "
            f"the city (that question costs nothing) or after {MAX_QUESTIONS} questions. Ask one question "
            'per turn: open ("What is a famous landmark?") or yes/no ("Is it in Asia?"). To guess, ask '
            'with the name of the city, e.g. "Is the city you are from Lima?".\n'
            f"{listing}"
            "You may think first; the question on your final line is the one that counts.\n"
            + self.final_line_instruction()
        )


def city_for_episode(index: int) -> int:
    """The city (position in ``CITIES``) that episode ``index`` plays with ``city_order=sweep``:
    stratified by part of the world, so every short run covers the regions in proportion."""
    return GuessMyCity.secret_for_episode(index)


def episode_of_city(name: str) -> int:
    """The first episode index (0-99) that plays the city called ``name`` with ``city_order=sweep``."""
    target = CITY_INDEX[name]
    return next(i for i in range(len(CITIES)) if city_for_episode(i) == target)


def behaviour_unsure_share(episodes: int = 200) -> dict[str, float]:
    """The built-in oracle against the ``behavior`` policy (stratified episodes 0..``episodes``-1, seed
    = index, through ``rollout``): the share of its questions answered "not sure", and the policy's
    success rate, mean return and mean length (paper Table 1 dataset: 0.53, -18.8, 18.8)."""
    found = unsure_answers(play_against_oracle(GuessMyCity(), "behavior", episodes))
    found["unsure_share"] = found.pop("unmapped_share")
    del found["unmapped"]
    return found
