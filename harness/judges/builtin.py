"""The built-in task judges: rule checks recomputed from the transcript, and task rubrics for LLMs."""

from __future__ import annotations

from lmrl.episode import Episode
from lmrl.judges.registry import register_llm_judge, register_rule_judge
from lmrl.tasks import car_dealer, guess_my_city, task_class, twenty_questions
from lmrl.tasks.question_game import QuestionGame


def correct_guess(episode: Episode) -> float | None:
    """1 if any question named the secret (by the game's own rule, whatever the oracle said), else 0."""
    game = task_class(episode.task)
    return game.secret_named(episode) if issubclass(game, QuestionGame) else None


register_rule_judge(
    "correct-guess",
    "1 if a question named the secret object/city by the task's guess rule (independent of the oracle)",
    correct_guess,
    tasks=("twenty-questions", "guess-my-city"),
)
register_rule_judge(
    "city-leakage",
    "number of oracle answers that named the city or its country",
    guess_my_city.leak_judge_rule,
    tasks=("guess-my-city",),
)
register_rule_judge(
    "sale-price",
    "the agreed price in dollars (missing when nothing was sold)",
    car_dealer.sale_price,
    tasks=("car-dealer",),
)
register_llm_judge(
    "oracle-faithfulness",
    "LLM rating 1-5: do the oracle's answers tell the truth about the secret without giving it away",
    {
        "twenty-questions": twenty_questions.RUBRIC_ORACLE_FAITHFULNESS,
        "guess-my-city": guess_my_city.RUBRIC_ORACLE_FAITHFULNESS,
    },
    tasks=("twenty-questions", "guess-my-city"),
)
register_llm_judge(
    "seller-naturalness",
    "LLM rating 1-5: how natural and persuasive the seller is",
    car_dealer.RUBRIC_SELLER_NATURALNESS,
    tasks=("car-dealer",),
)
