"""Wordle (LMRL-Gym §4.3): find a secret five-letter word in at most six guesses.

Rules and deliberate differences from the original ``llm_rl_scripts/wordle/env``:

* **Secret.** ``reset`` draws the secret uniformly from the vocabulary with ``self.rng``. The original
  env kept no fixed secret: after every valid guess it re-drew a target uniformly from the words still
  consistent with all feedback so far. Because every consistent word is equally likely either way,
  this is statistically the same game as drawing once at reset; a fixed secret is simpler to log.
* **Feedback** follows official Wordle rules, one letter per position: ``g`` (green) = right letter,
  right place; ``y`` (yellow) = the letter is in the secret elsewhere; ``b`` (black) = not in the
  secret. Repeated letters: greens are assigned first, then yellows left to right, each consuming one
  of the secret's remaining (non-green) copies of that letter; extra copies are ``b``. The original
  derived feedback from an accumulated per-letter knowledge state, so its feedback for repeated letters
  could differ from this (e.g. it could mark both "l"s of a guess yellow for a secret with one "l").
* **Rewards.** -1 per valid guess that does not solve; 0 for the solving guess (ends the episode,
  success). A guess that is not a vocabulary word (wrong length, unknown word, or nothing parsable)
  costs ``invalid_penalty`` (default -1; the paper's RL training scripts used -10), consumes one of
  the six tries and gets empty feedback. After six tries (valid or invalid) the episode ends. With the
  default penalty returns lie in [-6, 0]; in general in [6 * min(penalty, -1), 0].
* **Vocabulary.** ``data/wordle_words.txt`` (built by ``tools/build_wordle_vocab.py`` from
  the english-words and wordfreq packages, most frequent first). Option ``vocab``: ``"400"`` (default,
  the 400 most frequent words, comparable to the paper's 431-word "official 400" list), ``"full"``
  (all), or ``"N"`` (the top N). Option ``vocab_file`` reads another list in the same format (then
  ``vocab`` defaults to ``"full"``). Guesses and secrets both come from the chosen list.

Two renderings of the same history:

* ``chat``: observations are readable lines, e.g. ``"s l a t e -> b b y b g (5 guesses left)"``, and
  the system prompt carries the rules and the word list. These chat strings are what ``reset`` and
  ``step`` return, so they are what the episode log stores.
* ``text`` (the paper's raw form): ``"Wordle:\\n"``, then guesses spaced out (``"s l a t e"``) and
  feedback letters alone (``"b b y b g"``), an empty line after an invalid guess. ``render`` derives this
  from the chat strings of the history it is given (``text_observation``), so it depends on nothing
  but the history and works on logged episodes too.

The ``optimal`` scripted policy maximizes the expected information (entropy of the feedback pattern)
over the words still consistent with the feedback, choosing among all vocabulary words; it uses a
cached pattern matrix per vocabulary (numpy, a few ms for 400 words, ~1 s once for the full list) and a
cached opening guess.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmrl.parsing import Invalid, Parsed, Span, non_overlapping, read_action
from lmrl.task import Anchors, InvalidTaskOption, Policy, Segment, StepResult, Style, Task
from lmrl.tasks.registry import register_task

WORD_LENGTH = 5
MAX_GUESSES = 6
VOCAB_PATH = Path(__file__).parent / "data" / "wordle_words.txt"
DEFAULT_VOCAB = "400"
START_OBSERVATION = f"Guess the {WORD_LENGTH}-letter word. You have {MAX_GUESSES} guesses."
SOLVED = "g" * WORD_LENGTH
_WORD = re.compile(rf"[a-z]{{{WORD_LENGTH}}}")


# --- feedback and candidate filtering ------------------------------------------------------------
def feedback(guess: str, secret: str) -> str:
    """Official Wordle feedback for ``guess`` against ``secret``: one of g / y / b per position."""
    result = ["b"] * len(guess)
    remaining = Counter(s for g, s in zip(guess, secret, strict=True) if g != s)
    for i, (g, s) in enumerate(zip(guess, secret, strict=True)):
        if g == s:
            result[i] = "g"
        elif remaining[g] > 0:
            result[i] = "y"
            remaining[g] -= 1
    return "".join(result)


def consistent(word: str, clues: Iterable[tuple[str, str]]) -> bool:
    """Whether ``word`` could be the secret given ``(guess, feedback)`` clues."""
    return all(feedback(guess, word) == fb for guess, fb in clues)


def filter_candidates(words: Iterable[str], guess: str, fb: str) -> tuple[str, ...]:
    """The words that would have produced feedback ``fb`` for ``guess``."""
    return tuple(w for w in words if feedback(guess, w) == fb)


def pattern_code(fb: str) -> int:
    """A feedback string as a base-3 integer: b = 0, y = 1, g = 2, position i weighted 3**i."""
    return sum("byg".index(c) * 3**i for i, c in enumerate(fb))


def pattern_matrix(guesses: Sequence[str], secrets: Sequence[str], chunk: int = 1024) -> np.ndarray:
    """``M[i, j] = pattern_code(feedback(guesses[i], secrets[j]))`` as uint8, computed with numpy.

    Guess position i is yellow iff it is not green and the secret has more non-green copies of its
    letter than the guess has non-green copies of it before position i (yellows go left to right).
    """
    n = WORD_LENGTH
    g_all = np.array([[ord(c) for c in w] for w in guesses], dtype=np.uint8).reshape(-1, n)
    s = np.array([[ord(c) for c in w] for w in secrets], dtype=np.uint8).reshape(-1, n)
    out = np.zeros((len(g_all), len(s)), dtype=np.uint8)
    for start in range(0, len(g_all), chunk):
        g = g_all[start : start + chunk]
        code = out[start : start + chunk]
        open_ = [g[:, i, None] != s[None, :, i] for i in range(n)]  # not green, per position
        for i in range(n):
            letter = g[:, i, None]
            in_secret = sum(((letter == s[None, :, j]) & open_[j]).view(np.uint8) for j in range(n))
            before = sum(((letter == g[:, k, None]) & open_[k]).view(np.uint8) for k in range(i))
            yellow = open_[i] & (in_secret > before)
            code += (2 * ~open_[i] + yellow).astype(np.uint8) * np.uint8(3**i)
    return out


# --- vocabulary ----------------------------------------------------------------------------------
def read_word_file(path: str | Path) -> tuple[str, ...]:
    """Words of a list file (one per line, ``#`` lines and blank lines skipped), validated."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidTaskOption(f"cannot read vocabulary file {path}: {error.strerror or error}") from None
    words = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    bad = [w for w in words if not _WORD.fullmatch(w)]
    if bad:
        raise InvalidTaskOption(f"vocabulary file {path}: {bad[0]!r} is not {WORD_LENGTH} letters a-z")
    if len(set(words)) != len(words):
        dup = next(w for w, n in Counter(words).items() if n > 1)
        raise InvalidTaskOption(f"vocabulary file {path}: {dup!r} appears more than once")
    if not words:
        raise InvalidTaskOption(f"vocabulary file {path} holds no words")
    return words


@lru_cache(maxsize=8)
def load_vocab(spec: str = DEFAULT_VOCAB, path: str | None = None) -> tuple[str, ...]:
    """The vocabulary for option values ``vocab=spec`` (``"full"`` or a count) and ``vocab_file=path``."""
    words = read_word_file(VOCAB_PATH if path is None else path)
    if spec == "full":
        return words
    if not re.fullmatch(r"[0-9]+", spec) or int(spec) < 1:
        raise InvalidTaskOption(f"vocab must be 'full' or a positive word count, not {spec!r}")
    if int(spec) > len(words):
        raise InvalidTaskOption(f"vocab={spec} asks for more than the {len(words)} words available")
    return words[: int(spec)]


def vocab_hash(words: Sequence[str]) -> str:
    """sha256 of the newline-joined word list: identifies the exact vocabulary in run manifests."""
    return _hash_words(tuple(words))


@lru_cache(maxsize=8)  # every episode builds a task: hash each vocabulary once, not per episode
def _hash_words(words: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(words).encode()).hexdigest()


# --- the information-gain solver -----------------------------------------------------------------
class Solver:
    """Expected-information-gain guesser over one vocabulary (pattern matrix and opening cached)."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        self.matrix = pattern_matrix(words, words)
        self.opening = self.best(np.arange(len(words)))

    def best(self, candidates: np.ndarray) -> str:
        """The guess maximizing the entropy of the feedback pattern over ``candidates`` (indices).

        Ties go to a guess that could itself be the secret, then to the alphabetically first word.
        """
        n = len(candidates)
        if n == 1:
            return self.words[int(candidates[0])]
        sub = self.matrix[:, candidates].astype(np.int64)  # (guesses, candidates)
        rows = np.arange(len(self.words))[:, None]
        counts = np.bincount((sub + 243 * rows).ravel(), minlength=243 * len(self.words))
        counts = counts.reshape(len(self.words), 243).astype(np.float64)
        # H = log n - (1/n) sum c log c; rounding makes equal count multisets compare equal.
        c_log_c = np.where(counts > 0, counts * np.log2(np.maximum(counts, 1)), 0.0).sum(axis=1)
        entropy = np.round(math.log2(n) - c_log_c / n, 9)
        is_candidate = np.zeros(len(self.words), dtype=bool)
        is_candidate[candidates] = True
        top = np.flatnonzero(entropy == entropy.max())
        preferred = top[is_candidate[top]]
        pool = preferred if len(preferred) else top
        return min(self.words[int(i)] for i in pool)

    def guess(self, candidates: Sequence[str]) -> str:
        """The best guess given the words still consistent with the feedback (the opening is cached)."""
        if len(candidates) == len(self.words):
            return self.opening
        return self.best(np.array([self.index[w] for w in candidates], dtype=np.int64))


@lru_cache(maxsize=4)
def solver(words: tuple[str, ...]) -> Solver:
    return Solver(words)


# --- rendering helpers ---------------------------------------------------------------------------
_FEEDBACK_LINE = re.compile(
    rf"^((?:[a-z] ){{{WORD_LENGTH - 1}}}[a-z]) -> ((?:[gyb] ){{{WORD_LENGTH - 1}}}[gyb])\b"
)


def spaced(word: str) -> str:
    return " ".join(word)


def text_observation(observation: str) -> str | None:
    """The paper's text form of a chat observation: feedback letters, ``""`` after an invalid guess,
    ``None`` (left out) for the opening message."""
    if observation == START_OBSERVATION:
        return None
    found = _FEEDBACK_LINE.match(observation)
    return found.group(2) if found else ""


# --- parsing -------------------------------------------------------------------------------------
_MARKERS = ("guess", "answer", "action", "word")
_TOKEN = re.compile(rf"(?<![A-Za-z])[A-Za-z]{{{WORD_LENGTH}}}(?![A-Za-z])")
# A run of single letters joined by one separator each ("c r a n e", "C-R-A-N-E", "c, r, a, n, e");
# only runs of exactly five letters spell a word, and all-feedback runs ("b b y b g") never do.
_SPELLED = re.compile(r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])(?:(?:\s?[-,/.]\s?|\s)[A-Za-z](?![A-Za-z]))+")
# Words of reasoning prose that free text uses all the time ("I think", "my guess", "right place",
# "green"): never a candidate inside a sentence. A reply or marker line that is only such a word still
# guesses it ("Guess: think").
PROSE_WORDS: frozenset[str] = frozenset(
    """
    about above after again along among apart aside avoid based being below check clear could doing
    early every final first given going guess known later least maybe means might never often other
    place point quite right seems since start still their there these thing think those three tried
    tries until using where which while whole would green black white vowel valid
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def spelled_words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, lowercase word) of each five-letter spelled-out run in ``text``."""
    found = []
    for run in _SPELLED.finditer(text):
        letters = "".join(c for c in run.group() if c.isalpha()).lower()
        if len(letters) == WORD_LENGTH and not set(letters) <= set("gyb"):
            found.append((run.start(), run.end(), letters))
    return found


# --- scripted policies ---------------------------------------------------------------------------
def random_policy(task: Wordle, rng: random.Random) -> str:
    return rng.choice(task.vocab)


def optimal_policy(task: Wordle, rng: random.Random) -> str:
    return solver(task.vocab).guess(task.candidates)


BEHAVIOR_SMART_P = 0.34


def behavior_policy(task: Wordle, rng: random.Random) -> str:
    """The paper's dataset policy: with p = 0.34 a random word consistent with all feedback so far,
    otherwise a uniformly random vocabulary word."""
    if rng.random() < BEHAVIOR_SMART_P and task.candidates:
        return rng.choice(task.candidates)
    return rng.choice(task.vocab)


# --- the environment -----------------------------------------------------------------------------
@register_task
class Wordle(Task):
    name: ClassVar[str] = "wordle"
    version: ClassVar[str] = "2"
    description: ClassVar[str] = "Find the secret 5-letter word in 6 guesses from g/y/b letter feedback."
    anchors: ClassVar[Anchors] = Anchors(
        min=-6.0,
        avg=-4.12,
        max=-1.94,
        source="paper Table 5; max = information-gain scripted policy, a loose upper bound",
    )
    # With the default penalty; an instance with invalid_penalty < -1 widens its own reward_range.
    reward_range: ClassVar[tuple[float, float]] = (-6.0, 0.0)
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "optimal": optimal_policy,
        "behavior": behavior_policy,
    }
    text_header: ClassVar[str] = "Wordle:\n"
    # Example words of the system prompt: among the 100 most frequent, so valid in every vocabulary
    # of at least 100 words (the default is 400).
    answer_example: ClassVar[str] = "Guess: water"
    EXAMPLE: ClassVar[tuple[str, str]] = ("house", "heart")  # (guess, secret) of the feedback example

    max_steps = MAX_GUESSES

    def __init__(
        self,
        vocab: str | int | None = None,
        vocab_file: str | None = None,
        invalid_penalty: float | str = -1.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        spec = ("full" if vocab_file else DEFAULT_VOCAB) if vocab is None else str(vocab).strip().lower()
        self.vocab_spec = spec
        self.vocab_file = None if vocab_file is None else str(vocab_file)
        self.vocab: tuple[str, ...] = load_vocab(spec, self.vocab_file)
        self._vocab_set = frozenset(self.vocab)
        self.vocab_hash = vocab_hash(self.vocab)
        try:
            penalty = float(invalid_penalty)
        except (TypeError, ValueError):
            raise InvalidTaskOption(f"invalid_penalty must be a number, not {invalid_penalty!r}") from None
        if not math.isfinite(penalty) or penalty > 0:
            raise InvalidTaskOption(f"invalid_penalty must be a finite number <= 0, not {invalid_penalty!r}")
        self.invalid_penalty = penalty
        self.reward_range = (MAX_GUESSES * min(penalty, -1.0), 0.0)  # type: ignore[misc]
        self.rng = random.Random(0)
        self.secret = self.vocab[0]
        self.guesses: list[str | None] = []  # every try; None = not a vocabulary word
        self.clues: list[tuple[str, str]] = []  # (guess, feedback) of the valid tries
        self.candidates: tuple[str, ...] = self.vocab  # words consistent with all clues
        self.done = False
        self._success = False

    def setup(self, index: int) -> str:
        """Draw the secret from the seed alone (``index`` does not matter: every secret is a fresh draw)."""
        self.secret = self.rng.choice(self.vocab)
        self.guesses = []
        self.clues = []
        self.candidates = self.vocab
        self.done = False
        self._success = False
        return START_OBSERVATION

    def step(self, action: str | None) -> StepResult:
        if self.done:
            raise RuntimeError("step() called on a finished wordle episode")
        word = None if action is None else action.strip().lower()
        valid = word in self._vocab_set
        self.guesses.append(word if valid else None)
        left = MAX_GUESSES - len(self.guesses)
        info: dict[str, Any] = {"guess": word, "guesses_left": left}
        if not valid:
            self.done = left == 0
            shown = f"'{word}' is not" if word else "Your reply did not contain"
            observation = f"{shown} a valid {WORD_LENGTH}-letter word from the vocabulary. {self._left(left)}"
            info["feedback"] = ""
            if self.done:
                info["outcome"] = "failed"
            return StepResult(observation, self.invalid_penalty, self.done, True, info)
        assert word is not None
        fb = feedback(word, self.secret)
        self.clues.append((word, fb))
        self.candidates = filter_candidates(self.candidates, word, fb)
        info.update(feedback=fb, candidates=len(self.candidates))
        line = f"{spaced(word)} -> {spaced(fb)}"
        if fb == SOLVED:
            self.done = self._success = True
            info["outcome"] = "solved"
            return StepResult(f"{line} (solved in {len(self.guesses)})", 0.0, True, False, info)
        self.done = left == 0
        if self.done:
            info["outcome"] = "failed"
        return StepResult(f"{line} {self._left(left)}", -1.0, self.done, False, info)

    def _left(self, left: int) -> str:
        if left == 0:
            return f"(no guesses left; the word was {self.secret})"
        return f"({left} guess{'es' if left != 1 else ''} left)"

    def parse(self, raw: str) -> Parsed:
        """The guessed vocabulary word, lowercase, by the shared policy (``lmrl.parsing``).

        Candidates are the vocabulary's words, as words ("crane", "CRANE") or spelled out ("c r a n e",
        "C-R-A-N-E"), except ``PROSE_WORDS`` inside sentences; words already guessed count only when
        nothing else does ("trade gave b y y b g, so range" guesses range). A marker line or a whole
        reply that is a five-letter word outside the vocabulary is ``not-in-vocabulary``.
        """
        word = raw.strip().lower()
        if word in self._vocab_set:  # the common case (scripted policies, terse models)
            return word
        return read_action(
            raw, markers=_MARKERS, find=self._find_words, whole=self._whole_word, max_chars=20_000
        )

    def _find_words(self, text: str) -> list[Span]:
        spans = [
            Span(m.start(), m.end(), word)
            for m in _TOKEN.finditer(text)
            if (word := m.group().lower()) in self._vocab_set and word not in PROSE_WORDS
        ]
        spans += [
            Span(start, end, word) for start, end, word in spelled_words(text) if word in self._vocab_set
        ]
        spans = non_overlapping(spans)
        guessed = {g for g in self.guesses if g}
        fresh = [span for span in spans if span.action not in guessed]
        return fresh or spans

    def _whole_word(self, text: str) -> Parsed | None:
        """A whole answer: one word (or one spelled-out word); a line starting with a five-letter word
        outside the vocabulary is refused as ``not-in-vocabulary``."""
        lowered = text.lower()
        spelled = spelled_words(lowered)
        words = lowered.split()
        if spelled and spelled[0][:2] == (0, len(lowered)):
            word, exact = spelled[0][2], True
        elif words:
            word, exact = words[0].strip(".,;:!?()"), len(words) == 1
        else:
            return None
        if exact and word in self._vocab_set:
            return word
        if _TOKEN.fullmatch(word) and word not in self._vocab_set:
            return Invalid("not-in-vocabulary", word)
        return None

    @property
    def success(self) -> bool:
        return self._success

    def episode_info(self) -> dict[str, Any]:
        return {"secret": self.secret, "vocab_size": len(self.vocab)}

    def options(self) -> dict[str, Any]:
        return {
            "vocab": self.vocab_spec,
            "vocab_file": self.vocab_file,
            "vocab_size": len(self.vocab),
            "vocab_hash": self.vocab_hash,
            "invalid_penalty": self.invalid_penalty,
        }

    def candidate_actions(self) -> list[str] | None:
        """The vocabulary (400 words by default): a value-guided local agent with ``rerank`` picks a
        word instead of spelling one out letter by letter."""
        return list(self.vocab)

    def format_action(self, action: str) -> str:
        """Guesses are written letter by letter in the text style ("s l a t e")."""
        word = action.strip()
        return spaced(word.lower()) if word.isalpha() and word.isascii() else action

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text":
            converted: list[Segment] = []
            for s in history:
                if s.kind == "observation":
                    text = text_observation(s.text)
                    if text is None:
                        continue
                    s = Segment("observation", text)
                converted.append(s)
            history = converted
        return super().render(history, style)

    def system_prompt(self) -> str:
        guess, secret = self.EXAMPLE
        if len(self.vocab) <= 500:
            allowed = f"Allowed words ({len(self.vocab)}):\n{' '.join(sorted(self.vocab))}\n"
        else:
            allowed = f"The allowed words are {len(self.vocab)} common English words.\n"
        return (
            f"Let's play Wordle. I have picked a secret {WORD_LENGTH}-letter English word from a fixed word "
            f"list; you have {MAX_GUESSES} guesses to find it. Every guess must be a word from that list.\n"
            "After each guess I show your guess letter by letter and, after the arrow, one feedback letter "
            "per position:\n"
            "  g (green) = this letter is in the secret word at this position;\n"
            "  y (yellow) = this letter is in the secret word, but at a different position;\n"
            "  b (black) = this letter is not in the secret word (or it has no further copies of it).\n"
            "Repeated letters follow the official Wordle rules: greens are marked first, then yellows from "
            "left to right, one per remaining copy of the letter in the secret.\n"
            f"Example: if the secret were '{secret}', guessing '{guess}' would show: "
            f"{spaced(guess)} -> {spaced(feedback(guess, secret))}\n"
            "Each guess that is not the secret costs -1; the guess that finds the secret costs 0 and ends "
            f"the game. A guess that is not an allowed {WORD_LENGTH}-letter word costs "
            f"{self.invalid_penalty:g} and still uses up one of your guesses.\n"
            f"{allowed}"
            "You may think first. " + self.final_line_instruction()
        )
