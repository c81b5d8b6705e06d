"""The built-in task judges: rule checks recomputed from the transcript, and task rubrics for LLMs."""

from __future__ import annotations

from lmrl.episode import Episode
from lmrl.judges.registry import register_llm_judge, register_rule_judge
from lmrl.tasks import car_dealer, guess_my_city, twenty_questions


def correct_guess(episode: Episode) -> float | None:
    """1 if any question named the secret (by the task's rule, whatever the oracle said), else 0."""
    questions = [turn.info.get("question") or turn.raw_output for turn in episode.turns]
    if episode.task == "twenty-questions":
        secret = twenty_questions.find_object(str(episode.info.get("secret", "")))
        if secret is None:
            return None
        return float(any(twenty_questions.is_correct_guess(q, secret) for q in questions))
    if episode.task == "guess-my-city":
        index = guess_my_city.CITY_INDEX.get(str(episode.info.get("city", "")))
        if index is None:
            return None
        city = guess_my_city.CITIES[index]
        return float(any(guess_my_city.is_correct_guess(q, city) for q in questions))
    return None


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
