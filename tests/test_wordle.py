from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest
from policy_play import play_episode

from lmrl.parsing import Invalid
from lmrl.task import InvalidTaskOption, Segment, action_of
from lmrl.tasks import make_task, task_names
from lmrl.tasks.wordle import (
    MAX_GUESSES,
    START_OBSERVATION,
    Wordle,
    consistent,
    feedback,
    filter_candidates,
    load_vocab,
    pattern_code,
    pattern_matrix,
    solver,
    spaced,
    text_observation,
    vocab_hash,
)

# sha256 of the newline-joined default (top-400) list; changes only when data/wordle_words.txt does.
DEFAULT_HASH = "3a3ea30a4cec8ff7ca35d173eef226c3d052e0854c65a8bd6c7bcbac811aeace"


def new(secret: str, **options: object) -> Wordle:
    task = make_task("wordle", **options)
    assert isinstance(task, Wordle)
    task.reset(0)
    task.secret = secret
    return task


def play(task: Wordle, policy: str, seed: int) -> float:
    return play_episode(task, policy, seed).return_


# --- feedback ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("guess", "secret", "expected"),
    [
        ("crane", "crane", "ggggg"),
        ("slate", "range", "bbybg"),  # the reference's example
        ("crane", "range", "byyyg"),
        # one "e" in the secret: the first non-green "e" of the guess is yellow, the second black
        ("speed", "abide", "bbyby"),
        # two "l"s in the secret, none in place: both "l"s of the guess are yellow
        ("llama", "hello", "yybbb"),
        ("hello", "llama", "bbyyb"),
        # the green "e" takes one copy first, so only one of the other "e"s can be yellow
        ("eerie", "there", "ybybg"),
        ("there", "eerie", "bbyyg"),
        ("geese", "eerie", "bgybg"),
        # a green "b" uses one of the secret's two "b"s; the earlier "b" gets the other
        ("abbey", "kebab", "yygyb"),
        ("kebab", "abbey", "bygyy"),
        ("apple", "paper", "yygby"),
        # the secret's only "t" is green, so the guess's second "t" is black
        ("teeth", "there", "gygby"),
    ],
)
def test_feedback(guess: str, secret: str, expected: str) -> None:
    assert feedback(guess, secret) == expected


def test_pattern_codes_and_matrix_agree_with_feedback() -> None:
    assert pattern_code("bbbbb") == 0
    assert pattern_code("ggggg") == 242
    assert pattern_code("ybbbb") == 1
    assert pattern_code("bbbbg") == 2 * 3**4
    words = load_vocab("full")
    sample = words[:100] + words[-100:] + ("llama", "hello", "eerie", "there", "geese", "kebab", "abbey")
    matrix = pattern_matrix(sample, sample)
    for i, guess in enumerate(sample):
        for j, secret in enumerate(sample):
            assert matrix[i, j] == pattern_code(feedback(guess, secret)), (guess, secret)


def test_candidate_filtering() -> None:
    clues = [("slate", "bbybg"), ("crane", "byyyg")]
    assert consistent("range", clues)
    assert not consistent("crane", clues)
    remaining = filter_candidates(load_vocab("full"), "slate", "bbybg")
    assert "range" in remaining and "slate" not in remaining
    assert all(feedback("slate", w) == "bbybg" for w in remaining)


# --- vocabulary and options ----------------------------------------------------------------------
def test_vocabulary() -> None:
    default = load_vocab()
    full = load_vocab("full")
    assert len(default) == 400 and default == full[:400]
    assert 3000 <= len(full) <= 6000
    assert len(set(full)) == len(full)
    assert all(len(w) == 5 and w.isascii() and w.isalpha() and w.islower() for w in full)
    assert load_vocab("50") == full[:50]
    data = Path(__file__).resolve().parent.parent / "harness" / "tasks" / "data" / "wordle_words.txt"
    assert data.stat().st_size < 50_000
    assert vocab_hash(default) == DEFAULT_HASH
    assert vocab_hash(full) != DEFAULT_HASH and vocab_hash(full[:399]) != DEFAULT_HASH


def test_options_recorded() -> None:
    task = make_task("wordle")
    assert task.options() == {
        "vocab": "400",
        "vocab_file": None,
        "vocab_size": 400,
        "vocab_hash": DEFAULT_HASH,
        "invalid_penalty": -1.0,
    }
    assert task.reward_range == (-6.0, 0.0)
    harsh = make_task("wordle", vocab="full", invalid_penalty="-10")
    assert harsh.options()["vocab_size"] == len(load_vocab("full"))
    assert harsh.options()["invalid_penalty"] == -10.0
    assert harsh.reward_range == (-60.0, 0.0)
    assert make_task("wordle", vocab=1000).options()["vocab_size"] == 1000


def test_custom_vocab_file(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("# my list\nrange\n\nslate\ncrane\n")
    task = make_task("wordle", vocab_file=str(path))
    assert task.options()["vocab"] == "full" and task.options()["vocab_size"] == 3
    assert task.options()["vocab_file"] == str(path)
    assert task.options()["vocab_hash"] == vocab_hash(["range", "slate", "crane"])
    assert make_task("wordle", vocab_file=str(path), vocab="2").options()["vocab_size"] == 2
    task.reset(1)
    assert task.episode_info()["secret"] in {"range", "slate", "crane"}


@pytest.mark.parametrize(
    "options",
    [
        {"vocab": "abc"},
        {"vocab": "0"},
        {"vocab": "-3"},
        {"vocab": "999999"},
        {"invalid_penalty": "lots"},
        {"invalid_penalty": 1.0},
        {"invalid_penalty": float("nan")},
        {"colour": "green"},
        {"vocab_file": "/nonexistent/words.txt"},
    ],
)
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(InvalidTaskOption):
        make_task("wordle", **options)


@pytest.mark.parametrize("content", ["range\nRANGE\n", "range\nrange\n", "range\nrang\n", "# nothing\n"])
def test_bad_vocab_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "words.txt"
    path.write_text(content)
    with pytest.raises(InvalidTaskOption):
        make_task("wordle", vocab_file=str(path))


# --- the environment -----------------------------------------------------------------------------
def test_registered_and_reset() -> None:
    assert "wordle" in task_names()
    task = make_task("wordle")
    assert task.reset(7) == START_OBSERVATION
    secret = task.episode_info()["secret"]
    assert task.episode_info() == {"secret": secret, "vocab_size": 400}
    assert task.reset(7) == START_OBSERVATION and task.episode_info()["secret"] == secret
    secrets = set()
    for seed in range(50):
        task.reset(seed)
        secrets.add(task.episode_info()["secret"])
    assert len(secrets) > 30 and secrets <= set(load_vocab())


def test_solve_on_third_guess() -> None:
    task = new("range", vocab="full")
    first = task.step("slate")
    assert (first.observation, first.reward, first.done, first.invalid) == (
        "s l a t e -> b b y b g (5 guesses left)",
        -1.0,
        False,
        False,
    )
    assert first.info["feedback"] == "bbybg" and first.info["guesses_left"] == 5
    second = task.step("crane")
    assert second.observation == "c r a n e -> b y y y g (4 guesses left)"
    third = task.step("range")
    assert third.reward == 0.0 and third.done and not third.invalid
    assert third.observation.startswith("r a n g e -> g g g g g")
    assert task.success
    assert first.reward + second.reward + third.reward == -2.0
    assert task.candidates == ("range",)
    with pytest.raises(RuntimeError):
        task.step("range")


def test_six_guess_cap() -> None:
    task = new("range")
    rewards = [task.step(word) for word in ("house", "trade", "paper", "sweet", "apple", "teeth")]
    assert [r.reward for r in rewards] == [-1.0] * 6
    assert [r.done for r in rewards] == [False] * 5 + [True]
    assert not task.success
    assert "the word was range" in rewards[-1].observation
    assert rewards[-1].info["outcome"] == "failed"


@pytest.mark.parametrize("penalty", [None, -10.0])
def test_invalid_guesses(penalty: float | None) -> None:
    options = {} if penalty is None else {"invalid_penalty": penalty}
    expected = -1.0 if penalty is None else penalty
    task = new("range", **options)
    bad = task.step("xyzzq")
    assert bad.invalid and not bad.done and bad.reward == expected
    assert bad.observation == "'xyzzq' is not a valid 5-letter word from the vocabulary. (5 guesses left)"
    assert bad.info["feedback"] == ""
    assert task.step("crane").invalid  # a real word, but not in the default 400-word list
    assert task.step("ranges").invalid
    none = task.step(None)
    assert none.invalid and none.reward == expected and "(2 guesses left)" in none.observation
    assert task.step("range").reward == 0.0 and task.success


def test_all_invalid_hits_the_floor() -> None:
    task = new("range", invalid_penalty=-10)
    results = [task.step("zzzzz") for _ in range(MAX_GUESSES)]
    assert sum(r.reward for r in results) == task.reward_range[0] == -60.0
    assert results[-1].done and not task.success


def test_rendering() -> None:
    task = new("range", vocab="full")
    history = [Segment("observation", START_OBSERVATION)]
    for word in ("slate", "xyzzq", "crane"):
        result = task.step(word)
        history += [Segment("action", word, raw=f"Guess: {word}"), Segment("observation", result.observation)]
    assert task.render(history, "text") == (
        "Wordle:\ns l a t e\nb b y b g\nx y z z q\n\nc r a n e\nb y y y g\n"
    )
    messages = task.render(history, "chat")
    assert isinstance(messages, list)
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[1]["content"] == START_OBSERVATION
    assert messages[2]["content"] == "Guess: slate"
    assert messages[3]["content"] == "s l a t e -> b b y b g (5 guesses left)"
    assert text_observation(messages[5]["content"]) == ""
    assert text_observation(messages[7]["content"]) == "b y y y g"
    assert task.format_action("Crane") == "c r a n e"


def test_system_prompt() -> None:
    task = make_task("wordle")
    small = task.system_prompt()
    assert "Guess: " in small and "g (green)" in small and "y (yellow)" in small and "b (black)" in small
    assert small.count("final line") == 1 and task.final_line_instruction() in small
    # Every example word is valid in any vocabulary of at least 100 words, and the example is right.
    guess, secret = Wordle.EXAMPLE
    example = Wordle.answer_example.removeprefix("Guess: ")
    assert {guess, secret, example} <= set(load_vocab("100"))
    assert f"{spaced(guess)} -> {spaced(feedback(guess, secret))}" in small
    assert task.parse(Wordle.answer_example) == example
    assert all(word in small.split() for word in load_vocab())
    full = make_task("wordle", vocab="full", invalid_penalty=-10).system_prompt()
    assert "3" in full and "common English words" in full and "-10" in full
    assert len(full) < 3000


# The replies themselves: tests/parse_corpus/wordle.jsonl.
def test_every_vocabulary_word_parses_to_itself() -> None:
    """Scripted policies answer with vocabulary words: each must read back as itself, even prose words."""
    for spec in ("400", "full"):
        task = make_task("wordle", vocab=spec)
        assert isinstance(task, Wordle)
        task.reset(0)
        for word in task.vocab:
            assert task.parse(word) == word
            assert task.parse(f"Guess: {word}") == word
            assert task.parse(f"I will try {word.upper()}.\nGuess: {spaced(word)}") == word


def test_parse_prefers_new_words_and_names_unknown_ones() -> None:
    task = new("range")
    task.step("trade")
    assert task.parse("trade gave b y y b g, so now I try water") == "water"
    assert task.parse("Once more: trade") == "trade"  # only an old guess: it counts
    assert task.parse("Guess: crane") == Invalid("not-in-vocabulary", "crane")
    assert task.step(action_of(task.parse("Guess: crane"))).invalid


# --- scripted policies ---------------------------------------------------------------------------
def test_optimal_policy() -> None:
    task = make_task("wordle")
    assert isinstance(task, Wordle)
    returns = [play(task, "optimal", seed) for seed in range(100)]
    assert statistics.mean(returns) > -2.2  # measured -1.84 (paper's scripted policy: -1.94)
    assert min(returns) >= -5.0  # always solves
    assert solver(task.vocab).opening == "trade"  # deterministic and cached
    task.reset(3)
    assert task.policies["optimal"](task, random.Random(0)) == "trade"


def test_optimal_policy_full_vocabulary() -> None:
    task = make_task("wordle", vocab="full")
    assert isinstance(task, Wordle)
    returns = [play(task, "optimal", seed) for seed in range(20)]
    assert statistics.mean(returns) > -3.2 and min(returns) >= -5.0


def test_behavior_and_random_policies() -> None:
    task = make_task("wordle")
    assert isinstance(task, Wordle)
    behavior = [play(task, "behavior", seed) for seed in range(300)]
    # Measured -3.89 over these seeds (-3.99 over 3000); the paper's dataset mean is -4.12.
    assert -4.5 < statistics.mean(behavior) < -3.5
    random_returns = [play(task, "random", seed) for seed in range(100)]
    assert statistics.mean(random_returns) < -5.5
    task.reset(0)
    assert task.policies["random"](task, random.Random(0)) in task.vocab
