"""Judges score finished episodes. A judge failure is recorded on the episode, never raised.

Rule judges are pure functions of the episode; LLM judges send a rubric and the transcript to any
agent spec and parse ``Score: N``. Scores land in ``episode.judges[name] = {"score", "model"?,
"rationale"?, "error"?}``: inline when judging during ``lmrl run --judge``, or in the run's
``judges.jsonl`` when ``lmrl score`` re-scores a finished run (merged back when episodes load).
"""

from lmrl.judges import builtin  # noqa: E402,F401,I001  (registers the task judges)
from lmrl.judges.base import Judge, JudgeScore, RuleJudge, score_episode
from lmrl.judges.llm import JudgeParseError, LLMJudge, parse_score, transcript
from lmrl.judges.registry import judge_entries, make_judge, register_llm_judge, register_rule_judge

__all__ = [
    "Judge",
    "JudgeParseError",
    "JudgeScore",
    "LLMJudge",
    "RuleJudge",
    "judge_entries",
    "make_judge",
    "parse_score",
    "register_llm_judge",
    "register_rule_judge",
    "score_episode",
    "transcript",
]
