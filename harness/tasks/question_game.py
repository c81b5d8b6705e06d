"""What the two question games (``twenty-questions``, ``guess-my-city``) share: the game skeleton, the
question reader and the knowledge-file checks.

**The game** (``QuestionGame``): the agent asks at most ``MAX_QUESTIONS`` questions; each costs -1, the
one that guesses the secret costs 0 and ends the episode with success; after the last question the
episode ends anyway and the final observation names the secret (for readers and judges; the agent
never sees it). A reply that could not be read also costs -1 and uses up a question. The oracle is a
partner role: ``astep`` asks whoever fills it through ``Task.ask`` (the built-in oracle when nobody
does); the sync ``step`` always answers with the built-in oracle and refuses when a model fills the
role. Whether the oracle was sure is kept in the step info (``oracle_mapped``) and counted
(``unmapped``). Episode ``index`` plays ``secrets[secret_for_episode(index)]``: a seeded stratified
permutation (``lmrl.sampling``), so every short run covers the strata (categories, parts of the world)
in proportion; a game may also draw the secret with the episode's RNG or fix it.

**Questions** (``read_question``): the policy of ``lmrl.parsing.read_action`` with the markers
``Question:``, ``Guess:`` and ``Action:``; a game supplies how it finds questions in free text and how it
reads a whole line (20Q's guess statements, Guess My City's bare city names), optionally a different
whole-line reading after a marker. Nothing found is ``not-a-question``.

**Knowledge files** (``load_json``, ``check_entry``): every knowledge base and vocabulary is a JSON file
in ``data/``; a malformed entry is a ``KnowledgeBaseError`` whose one-line message names the file, the
entry and the field.
"""

from __future__ import annotations

import json
import random
import re
import types
import unicodedata
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, ClassVar, Union, get_args, get_origin

from lmrl.episode import Episode
from lmrl.parsing import Invalid, Parsed, Span, marker_line, marker_pattern, read_action
from lmrl.rollout import episode_stats, play_policy
from lmrl.sampling import stratified_item
from lmrl.task import Segment, StepResult, Style, Task

DATA_DIR = Path(__file__).parent / "data"
MAX_QUESTIONS = 20
MAX_QUESTION_CHARS = 300  # a question is one sentence, not an essay
MAX_REPLY_CHARS = 20_000
OUT_OF_QUESTIONS = "That was your last question."


# --- knowledge files -----------------------------------------------------------------------------
class KnowledgeBaseError(ValueError):
    """A knowledge-base or vocabulary file is malformed; the one-line message says where."""


def load_json(path: Path | str) -> dict[str, Any]:
    """A knowledge file's JSON object, or a ``KnowledgeBaseError`` naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise KnowledgeBaseError(f"{path}: {error}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise KnowledgeBaseError(f"{path}: expected a JSON object, not {type(data).__name__}")
    return data


def _fits(value: Any, kind: Any) -> bool:
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(kind))
    if origin is list:
        return isinstance(value, list) and all(_fits(v, get_args(kind)[0]) for v in value)
    if origin is dict:
        keys, values = get_args(kind)
        return isinstance(value, dict) and all(_fits(k, keys) and _fits(v, values) for k, v in value.items())
    if kind is None or kind is type(None):
        return value is None
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _kind_name(kind: Any) -> str:
    return (
        kind.__name__
        if isinstance(kind, type)
        else str(kind).replace("NoneType", "None").replace("None", "null")
    )


def check_entry(
    entry: Any, schema: dict[str, Any], where: str, optional: Collection[str] = ()
) -> dict[str, Any]:
    """``entry`` when it is an object whose fields are those of ``schema`` (name -> type, e.g. ``str``,
    ``list[str]``, ``bool | None``), each of its type (``optional`` ones may be missing); otherwise a
    ``KnowledgeBaseError`` naming ``where`` and the field."""
    if not isinstance(entry, dict):
        raise KnowledgeBaseError(f"{where}: expected an object, not {type(entry).__name__}")
    unknown = sorted(set(entry) - set(schema))
    if unknown:
        raise KnowledgeBaseError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    for name, kind in schema.items():
        if name not in entry:
            if name in optional:
                continue
            raise KnowledgeBaseError(f"{where}: missing field {name!r}")
        if not _fits(entry[name], kind):
            shown = json.dumps(entry[name], ensure_ascii=False)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise KnowledgeBaseError(f"{where}: field {name!r} must be {_kind_name(kind)}, not {shown}")
    return entry


# --- reading the agent's question ----------------------------------------------------------------
MARKERS = marker_pattern(("question", "guess", "action"))
# The verbs a yes/no question starts with ("Is it ...", "Does it ...").
YES_NO_VERBS = "is|are|am|was|were|does|do|did|can|could|would|will|should|shall|has|have|had|may|might"
_LETTER = re.compile(r"[^\W\d_]")


def has_letters(text: str) -> bool:
    return bool(_LETTER.search(text))


def too_long(text: str) -> Invalid:
    """Why a question of ``text`` is refused as too long."""
    return Invalid("too-long", f"a question of {len(text):,} characters; at most {MAX_QUESTION_CHARS}")


def read_question(
    raw: str,
    *,
    find: Callable[[str], Sequence[Span]],
    whole: Callable[[str], Parsed | None],
    whole_after_marker: Callable[[str], Parsed | None] | None = None,
) -> Parsed:
    """The question in a model's reply (``read_action``'s policy with the question markers): ``find``
    lists the questions in a text, ``whole`` reads a whole cleaned line (or reply) as one question or
    ``None``; ``whole_after_marker``, when given, reads it instead when the reply has a marker."""
    if (
        whole_after_marker is not None
        and marker_line(unicodedata.normalize("NFKC", raw), MARKERS) is not None
    ):
        whole = whole_after_marker
    return read_action(
        raw, markers=MARKERS, find=find, whole=whole, max_chars=MAX_REPLY_CHARS, none_reason="not-a-question"
    )


# --- the game skeleton ---------------------------------------------------------------------------
class QuestionGame(Task):
    """At most ``MAX_QUESTIONS`` questions to an oracle about a secret (module docstring). A game
    supplies its secrets, the built-in oracle (``builtin_reply``), the model oracle's prompt
    (``oracle_prompt``), what a reply means (``answered``) and what an unreadable question gets
    (``unreadable``); ``guess_settled`` may end a turn before the oracle is asked."""

    reward_range: ClassVar[tuple[float, float]] = (-float(MAX_QUESTIONS), 0.0)
    text_header: ClassVar[str] = "Questions:\n"
    max_steps = MAX_QUESTIONS
    intro: ClassVar[str]
    oracle_policy: ClassVar[str]  # the built-in oracle's policy name (role spec ``scripted/<name>``)
    secrets: ClassVar[Sequence[Any]]
    secret_strata: ClassVar[Sequence[str]]  # each secret's category or region, for the stratified order

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.fixed_secret: Any = None
        self.random_secret = False
        self.rng = random.Random(0)
        self.start(self.secrets[0])

    @classmethod
    def secret_of(cls, info: dict[str, Any]) -> Any:
        """The secret a finished episode's ``info`` names, or ``None`` (each game knows its record)."""
        raise NotImplementedError

    @classmethod
    def names_secret(cls, question: str, secret: Any) -> bool:
        """Whether ``question`` names ``secret`` by the game's guess rule."""
        raise NotImplementedError

    @classmethod
    def secret_named(cls, episode: Any) -> float | None:
        """Rule judge: 1 if a question of the finished ``episode`` named its secret by the game's guess
        rule (whatever the oracle said), 0 if none did, ``None`` when the record names no secret."""
        secret = cls.secret_of(episode.info)
        if secret is None:
            return None
        questions = [turn.info.get("question") or turn.raw_output for turn in episode.turns]
        return float(any(cls.names_secret(question, secret) for question in questions))

    @classmethod
    def secret_for_episode(cls, index: int) -> int:
        """The secret (a position in ``secrets``) that episode ``index`` plays: a stratified permutation."""
        return stratified_item(index, cls.secret_strata, salt=f"{cls.name}/{cls.version}")

    def start(self, secret: Any) -> None:
        """A fresh game about ``secret`` (games extend it with their own counters)."""
        self.secret = secret
        self.turn = 0  # questions asked so far, unreadable ones included
        self.dialogue: list[tuple[str, str]] = []  # (question, the answer the agent saw)
        self.pending_question: str | None = None  # the question the oracle is asked now
        self.done = False
        self._success = False
        self.unmapped = 0  # answers where the oracle was not sure

    def setup(self, index: int) -> str:
        if self.fixed_secret is not None:
            secret = self.fixed_secret
        elif self.random_secret:
            secret = self.rng.choice(self.secrets)
        else:
            secret = self.secrets[self.secret_for_episode(index)]
        self.start(secret)
        return self.intro

    @property
    def success(self) -> bool:
        return self._success

    # --- one question ----------------------------------------------------------------------------
    def _oracle(self) -> Any:
        return (getattr(self, "partners", None) or {}).get("oracle")

    def _is_builtin(self, partner: Any) -> bool:
        return getattr(partner, "spec", None) == f"scripted/{self.oracle_policy}"

    def _begin(self, action: str | None) -> str | StepResult:
        """Count the question; the question to put to the oracle, or the turn when it is settled
        without one (an unreadable reply, a guess the game decides itself)."""
        if self.done:
            raise RuntimeError(f"step() called on a finished {self.name} episode")
        self.turn += 1
        self.pending_question = (action or "").strip() or None
        if self.pending_question is None:
            return self.unreadable()
        return self.guess_settled(self.pending_question) or self.pending_question

    # The sync path always answers with the built-in oracle; the runner calls ``astep``, which asks
    # whoever fills the ``oracle`` role.
    def step(self, action: str | None) -> StepResult:
        partner = self._oracle()
        if partner is not None and not self._is_builtin(partner):
            raise RuntimeError(f"{self.name} with a model oracle needs `await task.astep(action)`")
        question = self._begin(action)
        if isinstance(question, StepResult):
            return question
        return self.answered(question, self.builtin_reply(question), model=False)

    async def astep(self, action: str | None) -> StepResult:
        question = self._begin(action)
        if isinstance(question, StepResult):
            return question
        partner = self._oracle()
        if partner is None:
            return self.answered(question, self.builtin_reply(question), model=False)
        reply = await self.ask("oracle", self.oracle_prompt(question))
        return self.answered(question, reply, model=not self._is_builtin(partner))

    @abstractmethod
    def builtin_reply(self, question: str) -> str:
        """The built-in oracle's reply to ``question`` about the secret."""

    @abstractmethod
    def oracle_prompt(self, question: str) -> list[dict[str, str]]:
        """The chat a model in the oracle role sees for ``question``."""

    @abstractmethod
    def answered(self, question: str, reply: str, model: bool) -> StepResult:
        """The turn after the oracle replied (``model``: a model oracle, not the built-in one)."""

    @abstractmethod
    def unreadable(self) -> StepResult:
        """The turn for a reply that held no question (it still costs a question)."""

    def guess_settled(self, question: str) -> StepResult | None:
        """A turn decided before the oracle is asked (a correct guess, when the game says so)."""
        return None

    @abstractmethod
    def reveal(self) -> str:
        """The sentence naming the secret after the last question ("The object was a cat.")."""

    def note_mapped(self, info: dict[str, Any], mapped: bool) -> None:
        """Record in the step info whether the oracle was sure, and count it when it was not."""
        info["oracle_mapped"] = mapped
        self.unmapped += not mapped

    def question_spent(self, observation: str, info: dict[str, Any], invalid: bool = False) -> StepResult:
        """-1 for the question; after the last one the episode ends and the observation names the secret."""
        if self.turn < MAX_QUESTIONS:
            return StepResult(observation, -1.0, False, invalid, info)
        self.done = True
        info["outcome"] = "out_of_questions"
        return StepResult(f"{observation}\n{OUT_OF_QUESTIONS} {self.reveal()}", -1.0, True, invalid, info)

    def guessed(self, observation: str, info: dict[str, Any]) -> StepResult:
        """The question that guessed the secret: 0 and the end of the episode, with success."""
        self.done = self._success = True
        info["outcome"] = "correct"
        return StepResult(observation, 0.0, True, False, info)

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text" and history and history[0].kind == "observation" and history[0].text == self.intro:
            history = history[1:]  # the paper's transcripts start with "Questions:" and the first question
        return super().render(history, style)


# --- measurements --------------------------------------------------------------------------------
def play_against_oracle(task: Task, policy: str, episodes: int, seed: int = 0) -> list[Episode]:
    """``policy`` against the built-in oracle for episode indices 0..episodes-1 (``rollout``, no I/O)."""
    return play_policy(task, policy, [(seed * 1_000_003 + index, index) for index in range(episodes)])


def unsure_answers(played: list[Episode]) -> dict[str, float]:
    """How many questions the oracle answered in ``played`` and how often it was not sure, with the
    policy's success rate, return and length (``episode_stats``)."""
    mapped = [t.info["oracle_mapped"] for e in played for t in e.turns if "oracle_mapped" in t.info]
    unsure = mapped.count(False)
    return {
        "questions": len(mapped),
        "unmapped": unsure,
        "unmapped_share": unsure / len(mapped) if mapped else 0.0,
        **episode_stats(played),
    }
