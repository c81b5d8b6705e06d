"""Twenty Questions (LMRL-Gym §5.1): find the everyday object the oracle thinks of with yes/no questions.

**Objects.** 158 everyday objects in the paper's 17 categories (Sports 10, Animals 10, Fruits 10,
Vehicles 10, Clothes 11, Electronics 10, Musical Instruments 10, Furniture 10, Office Supplies 14,
Vegetables 10, Art 7, Kitchen Tools 10, Nature 11, Toys 5, Jewelry 9, Garden Supplies 5, Tools 6),
our own list, in ``data/twenty_questions_objects.json``: a knowledge base (KB) giving every object
its accepted variants ("TV" for "Television") and attributes (category, size, materials, where it is
found, uses, colors, counts of legs and wheels, body parts it is worn on, and boolean traits such as
alive, edible, man-made, electric, worn). The file is validated when this module loads.

**Secret.** Option ``secret``: ``"index"`` (default) plays ``OBJECTS[secret_index(index)]``, a seeded
stratified permutation (``lmrl.sampling``): any first N episodes cover the categories in proportion
(the first 17 hit all 17), and ``--episodes 158`` still sweeps every object once (the paper's
"deterministic mode"); ``"random"`` draws it with the episode's RNG; an object's name
(or variant) fixes it for every episode.

**Rules.**

* Each agent action is one yes/no question, read by ``lmrl.parsing.read_action`` (markers
  ``Question:``, ``Guess:``, ``Action:``). A candidate question is a sentence ending in "?" of at most
  ``MAX_QUESTION_CHARS`` characters, or what follows a marker ("Guess: a basketball"), or a reply that
  is one sentence starting like a question ("Is it an animal"). The canonical action is the sentence
  without markdown or quotes, ending in one "?". "No.", a statement or a bare word without a marker
  is ``not-a-question``; two different questions without a marker are ``ambiguous``; replies over
  ``MAX_REPLY_CHARS`` are ``too-long``. The kb-oracle answers ``Yes.``, ``No.`` or ``I'm not sure.``.
* Reward -1 per question; 0 for the question that names the secret object (or a variant) and is
  answered ``Yes.``: the episode ends with success. After 20 questions it ends anyway, so returns
  lie in [-20, 0]. An empty or unparsable output is invalid: it still costs -1 and uses up a
  question, is answered ``No.`` without consulting the oracle (as the paper's "invalid question"
  sentinel was), and leaves the range unchanged.
* **Correct guess** (``is_correct_guess``, a rule judge needing no NLP data): after case, articles,
  punctuation and a guess frame ("Is it", "Is the object", "Could it be", "My guess is", "Are you
  thinking of", ...) and counters ("a pair of", "a kind of") are removed, what remains must be the
  object's name or a variant, up to a simple plural and spacing ("Is it a basketball?", "Is the
  object a TV?", "basketball?", "Is it a pair of shoes?"). Near-misses are rejected: a more general
  or a longer noun phrase ("Is it a ball?", "Is it a basketball court?") or the name inside another
  predicate ("Is it used in basketball?", "Is it bigger than a basketball?"). As in the paper,
  success needs the rule judge's match **and** a ``Yes.`` from the oracle: a model oracle that says
  ``No.`` to a correct guess denies the success (the built-in oracle always says ``Yes.`` to it).

**Oracle** (role ``oracle``, default ``scripted/kb-oracle``):

* ``kb-oracle`` (``harness/tasks/twenty_questions_oracle.py``) maps the question to KB attributes with
  keyword patterns (categories, traits, materials, places, uses, colors, body parts, legs and wheels,
  object names; "bigger / heavier / taller than <anything>" from typical sizes and weights in
  ``data/twenty_questions_sizes.json``; "and" joins, "or" splits, "not" negates) and answers from the
  facts. A question with words it does not cover, a comparison with something it does not know, or
  two things of about the same size get ``I'm not sure.`` (unlike the paper's oracle, which said
  ``No.``: a guess passed off as an answer misleads the agent) and are flagged: turn info
  ``oracle_mapped: False``; mapped turns carry ``oracle_mapped: True`` and ``attribute`` (what was
  checked). Every turn's info has ``answer``, ``question``, ``guess`` (the KB object the question
  names, if any) and ``correct_guess``; ``episode_info`` counts the unmapped questions (coverage).
* A model in the role gets ``oracle_messages``: a system prompt naming the object and demanding
  exactly "Yes." or "No.", and the question. Its reply is read by ``parse_oracle_reply`` (yes/no at
  the start, "Yes, it is", "Nope", "Definitely not", ...); anything else counts as ``No.`` and is
  flagged ``oracle_parse_failed``. Turn info then also has the raw reply and ``kb_answer`` (what the
  KB would have said, ``None`` when unmapped) for faithfulness reports.
* ``step`` (sync) always uses the KB oracle and refuses when a model oracle is attached; the runner
  calls ``astep``, which asks whoever fills the role.

**Renderings.** ``chat``: a system prompt with the rules, the categories and the answer format, the
intro, then questions and answers as turns. ``text`` (the paper's format): ``Questions:``, then one
question and one answer per line (the intro is left out). When the questions run out, the final
observation also names the object (never shown to the agent; it lets judges read the transcript).

**Scripted policies.** ``random`` (generic questions from ``QUESTION_BANK`` mixed with random
guesses), ``behavior`` (the dataset-generating questioner: keeps the objects consistent with the
answers, asks the best-splitting bank question with probability ``BEHAVIOR_SMART_P`` and otherwise a
random one, and guesses a random remaining candidate when few remain; tuned against the kb-oracle to
the paper's dataset success rate 0.31), ``optimal`` (always the best split, guessing when at most 2
candidates remain; an upper reference) and ``kb-oracle`` (the oracle role's policy).
``measure_policy`` reproduces the tuning numbers; against the kb-oracle, 158 x 2 episodes, seeds 0-9:

=========  =======  ===========  ===========
policy     success  mean return  mean length
=========  =======  ===========  ===========
behavior   0.30     -17.9        18.2
optimal    1.00     -7.3         8.3
random     0.03     -19.7        19.8
=========  =======  ===========  ===========

The paper's dataset reports success 0.31, mean return -17.3 and mean length 14.9; under a 20-question
cap these cannot all hold (failures alone contribute 0.69 x 20 = 13.8 to the mean length, and a mean
return of -17.3 implies successes after ~12 questions, i.e. a mean length near 17.6), so the behavior
policy matches the success rate. ``optimal`` beats the paper's max anchor (-12.6) by far because the
kb-oracle never errs on its own bank questions. The oracle's measurements: ``oracle_accuracy`` (hand
labels, ``tests/data/twenty_questions_oracle_labels.jsonl``) and ``behaviour_unmapped_share``.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from typing import Any, ClassVar

from lmrl.parsing import Invalid, Parsed, Span, clean, marker_line, marker_pattern, read_action
from lmrl.rollout import episode_stats, play_policy
from lmrl.sampling import stratified_item
from lmrl.task import Anchors, InvalidTaskOption, Policy, Segment, StepResult, Style, Task
from lmrl.tasks.registry import register_task
from lmrl.tasks.twenty_questions_oracle import (  # noqa: F401 - re-exported: judges and tests use them
    DATA_DIR,
    DATA_PATH,
    KB,
    NO,
    NOT_SURE,
    OBJECTS,
    RUBRIC_ORACLE_FAITHFULNESS,
    SIZES,
    TRAIT_PATTERNS,
    YES,
    KBObject,
    KnowledgeBaseError,
    find_object,
    guess_target,
    interpret,
    is_correct_guess,
    kb_answer,
    load_knowledge_base,
    normalize,
    oracle_accuracy,
    oracle_messages,
    parse_oracle_reply,
    yes_mask,
)

MAX_QUESTIONS = 20
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


# --- scripted policies ---------------------------------------------------------------------------
# Generic yes/no questions the scripted questioners choose from; every one maps to KB attributes.
QUESTION_BANK: tuple[str, ...] = tuple(
    json.loads((DATA_DIR / "twenty_questions_question_bank.json").read_text(encoding="utf-8"))["questions"]
)

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


# --- parsing the agent's question (harness/parsing.py's policy) ---------------------------------
_MARKERS = marker_pattern(("question", "guess", "action"))
MAX_QUESTION_CHARS = 300  # a candidate question is one sentence, not an essay
MAX_REPLY_CHARS = 20_000
# Where a sentence (and so a candidate question) can start: a new line, after sentence punctuation, or
# at an opening quote or bracket ('I'll ask "Is it alive?"').
_SENTENCE_START = re.compile(r"\n|[.!?;:](?=\s)|[\"“«(\[]")
_IN_WORD_APOSTROPHE = re.compile(r"(?<=\w)['’](?=\w)")
_CONTRACTION = re.compile(r"\b(\w+) (s|t|d|ll|re|ve|m)\b")
_LIST_MARK = re.compile(r"^(?:\d+[.)]|[-+•])\s*")
_INTERROGATIVE = re.compile(
    r"^(?:is|are|am|was|were|does|do|did|can|could|would|will|should|shall|has|have|had|may|might|must)"
    r"\s+\w",
    re.IGNORECASE,
)
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
    if not re.search(r"[^\W\d_]", text) or len(text) > MAX_QUESTION_CHARS:
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
        return Invalid("too-long", f"a question of {len(text):,} characters; at most {MAX_QUESTION_CHARS}")
    if _INTERROGATIVE.match(text) or (_GUESS_STATEMENT.match(text) and len(text.split()) <= 8):
        return _question(text)
    if _NOT_QUESTION.match(text) or len(text.split()) > 6 or _MULTI_SENTENCE.search(text):
        return Invalid("not-a-question", text[:60])
    return _question(text)


def parse_question(raw: str) -> Parsed:
    """The question in a model's reply, or why there is none (module docstring)."""
    marked = marker_line(unicodedata.normalize("NFKC", raw), _MARKERS) is not None
    parsed = read_action(
        raw,
        markers=_MARKERS,
        find=_find_questions,
        whole=_whole_marked if marked else _whole_bare,
        max_chars=MAX_REPLY_CHARS,
        none_reason="not-a-question",
    )
    if isinstance(parsed, str):  # read_action cleans a whole line, which turns "it's" into "it s"
        parsed = _CONTRACTION.sub(
            lambda m: f"{m[1]}'{m[2]}" if re.search(rf"\b{m[1]}['’]{m[2]}\b", raw) else m[0], parsed
        )
    return parsed


# --- the environment -----------------------------------------------------------------------------
_OBJECT_CATEGORIES: tuple[str, ...] = tuple(o.category for o in OBJECTS)


def secret_index(index: int) -> int:
    """The object episode ``index`` plays: a stratified permutation, so any first N episodes cover the
    categories in proportion (the first 17 hit all 17) and 158 consecutive ones from 0 play every object."""
    return stratified_item(index, _OBJECT_CATEGORIES, salt=f"twenty-questions/{TwentyQuestions.version}")


def _is_kb_oracle(partner: Any) -> bool:
    return getattr(partner, "spec", None) == f"scripted/{KB_ORACLE}"


@register_task
class TwentyQuestions(Task):
    name: ClassVar[str] = "twenty-questions"
    version: ClassVar[str] = "2"
    description: ClassVar[str] = (
        "Find the everyday object (158 in 17 categories) with at most 20 yes/no questions to an oracle."
    )
    anchors: ClassVar[Anchors] = Anchors(min=-20.0, avg=-17.3, max=-12.6, source="paper Table 5")
    reward_range: ClassVar[tuple[float, float]] = (-20.0, 0.0)
    roles: ClassVar[dict[str, str]] = {"oracle": f"scripted/{KB_ORACLE}"}
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "behavior": behavior_policy,
        "optimal": optimal_policy,
        KB_ORACLE: kb_oracle_policy,
    }
    text_header: ClassVar[str] = "Questions:\n"
    answer_example: ClassVar[str] = "Question: Is it an animal?"
    max_steps = MAX_QUESTIONS

    def __init__(self, secret: str = "index", **options: Any) -> None:
        super().__init__(**options)
        key = str(secret).strip()
        if key.lower() in ("index", "random"):
            self.secret_mode = key.lower()
            self._fixed: KBObject | None = None
        else:
            found = find_object(key)
            if found is None:
                raise InvalidTaskOption(
                    f'secret must be "index", "random" or the name of one of the {len(OBJECTS)} objects, '
                    f"not {secret!r}"
                )
            self.secret_mode, self._fixed = found.name, found
        self.rng = random.Random(0)
        self._start(OBJECTS[0])

    def _start(self, secret: KBObject) -> None:
        self.secret = secret
        self.turn = 0
        self.dialogue: list[tuple[str, str]] = []  # (question, answer) for the valid questions
        self.pending_question: str | None = None
        self.done = False
        self._success = False
        self.unmapped = 0
        self.parse_failures = 0
        self.invalid = 0
        self.guesses = 0
        self.named_secret = False
        self.oracle_kind = "kb"

    def setup(self, index: int) -> str:
        if self._fixed is not None:
            secret = self._fixed
        elif self.secret_mode == "random":
            secret = self.rng.choice(OBJECTS)
        else:
            secret = OBJECTS[secret_index(index)]
        self._start(secret)
        return INTRO

    # The sync path always answers with the knowledge base; the runner calls ``astep``, which asks
    # whoever fills the ``oracle`` role.
    def step(self, action: str | None) -> StepResult:
        partner = (getattr(self, "partners", None) or {}).get("oracle")
        if partner is not None and not _is_kb_oracle(partner):
            raise RuntimeError("twenty-questions with a model oracle needs `await task.astep(action)`")
        question = self._begin(action)
        if question is None:
            return self._invalid_step()
        return self._answer(question, kb_answer(question, self.secret).text, model=False)

    async def astep(self, action: str | None) -> StepResult:
        question = self._begin(action)
        if question is None:
            return self._invalid_step()
        partner = (getattr(self, "partners", None) or {}).get("oracle")
        if partner is None:
            return self._answer(question, kb_answer(question, self.secret).text, model=False)
        reply = await self.ask("oracle", oracle_messages(self.secret, question))
        return self._answer(question, reply, model=not _is_kb_oracle(partner))

    def _begin(self, action: str | None) -> str | None:
        if self.done:
            raise RuntimeError("step() called on a finished twenty-questions episode")
        self.turn += 1
        question = (action or "").strip()
        self.pending_question = question or None
        return self.pending_question

    def _invalid_step(self) -> StepResult:
        self.invalid += 1
        info: dict[str, Any] = {"question": None, "answer": NO, "questions": self.turn}
        return self._result(NO, -1.0, info, invalid=True)

    def _answer(self, question: str, reply: str, model: bool) -> StepResult:
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
            info.update(oracle="kb", oracle_mapped=kb.mapped, attribute=kb.attribute)
            self.unmapped += not kb.mapped
        target = guess_target(question)
        correct = is_correct_guess(question, self.secret)
        self.guesses += target is not None or correct
        self.named_secret |= correct
        info.update(answer=answer, guess=target.name if target else None, correct_guess=correct)
        self.dialogue.append((question, answer))
        self.pending_question = None
        if correct and answer == YES:
            self.done = self._success = True
            info["outcome"] = "correct"
            return StepResult(answer, 0.0, True, False, info)
        return self._result(answer, -1.0, info)

    def _result(self, answer: str, reward: float, info: dict[str, Any], invalid: bool = False) -> StepResult:
        if self.turn < MAX_QUESTIONS:
            return StepResult(answer, reward, False, invalid, info)
        self.done = True
        info["outcome"] = "out_of_questions"
        reveal = f"That was your last question. The object was {self.secret.label}."
        return StepResult(f"{answer}\n{reveal}", reward, True, invalid, info)

    def parse(self, raw: str) -> Parsed:
        return parse_question(raw)

    @property
    def success(self) -> bool:
        return self._success

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

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text" and history and history[0].kind == "observation" and history[0].text == INTRO:
            history = history[1:]  # the paper's transcripts start with "Questions:" and the first question
        return super().render(history, style)

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


def _seeds(episodes: int, seed: int) -> list[tuple[int, int]]:
    return [(seed * 1_000_003 + index, index) for index in range(episodes)]


def measure_policy(
    policy: str = "behavior", episodes: int = 2 * len(OBJECTS), seed: int = 0, secret: str = "index"
) -> dict[str, float]:
    """Play ``policy`` against the kb-oracle for indices 0..episodes-1 (``rollout``, no I/O) and return
    the success rate, mean and std of the return, and mean length. ``measure_policy("behavior")`` is how
    ``BEHAVIOR_SMART_P`` was tuned (158 x 2 episodes)."""
    return episode_stats(play_policy(TwentyQuestions(secret=secret), policy, _seeds(episodes, seed)))


def behaviour_unmapped_share(episodes: int = len(OBJECTS), seed: int = 0) -> dict[str, float]:
    """How often the kb-oracle is not sure (cannot map the question, or cannot decide it for the secret)
    on the behaviour policy's own questions, over ``episodes`` episodes against the kb-oracle."""
    played = play_policy(TwentyQuestions(), "behavior", _seeds(episodes, seed))
    mapped = [t.info["oracle_mapped"] for e in played for t in e.turns if not t.invalid]
    unsure = mapped.count(False)
    return {
        "questions": len(mapped),
        "unmapped": unsure,
        "unmapped_share": unsure / len(mapped) if mapped else 0.0,
    }
