"""Judges score finished episodes. A judge failure is recorded on the episode, never raised.

A judge has a ``name`` and ``async score(episode) -> JudgeScore``. Rule judges are plain functions of
the episode; LLM judges (a later issue) call an agent with a rubric. Scores land in
``episode.judges[name] = {"score": float | None, "rationale"?: str, "error"?: str}``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from harness.episode import Episode
from harness.secrets import one_line

__all__ = ["Judge", "JudgeScore", "RuleJudge", "score_episode"]


@dataclass(slots=True)
class JudgeScore:
    score: float | None
    rationale: str | None = None


class Judge(ABC):
    name: str

    @abstractmethod
    async def score(self, episode: Episode) -> JudgeScore: ...


class RuleJudge(Judge):
    """A judge from a pure function of the episode."""

    def __init__(self, name: str, rule) -> None:  # rule: Callable[[Episode], float | None]
        self.name = name
        self._rule = rule

    async def score(self, episode: Episode) -> JudgeScore:
        return JudgeScore(self._rule(episode))


async def score_episode(episode: Episode, judges: list[Judge]) -> None:
    for judge in judges:
        try:
            result = await judge.score(episode)
            entry: dict[str, object] = {"score": result.score}
            if result.rationale:
                entry["rationale"] = result.rationale
        except Exception as error:
            entry = {"score": None, "error": one_line(error)}
        episode.judges[judge.name] = entry
