"""The judge seam: ``await judge.score(episode) -> JudgeScore``. A failure is recorded, never raised."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmrl.episode import Episode
from lmrl.secrets import one_line


@dataclass(slots=True)
class JudgeScore:
    score: float | None
    rationale: str | None = None
    cost_usd: float | None = None  # what an LLM judge's call cost (litellm's price map)


class Judge(ABC):
    name: str
    model: str | None = None  # the agent spec behind an LLM judge; None for rule judges
    tasks: tuple[str, ...] | None = None  # tasks it applies to (None = every task)

    @property
    def key(self) -> str:
        """Where scores are filed: the name, plus the model for LLM judges (two models, two columns)."""
        return self.name if self.model is None else f"{self.name}={self.model}"

    @abstractmethod
    async def score(self, episode: Episode) -> JudgeScore: ...

    def applies_to(self, episode: Episode) -> bool:
        return self.tasks is None or episode.task in self.tasks

    async def aclose(self) -> None:
        return None


class RuleJudge(Judge):
    """A judge from a pure function of the episode (returns the score, or None when not applicable)."""

    def __init__(
        self, name: str, rule: Callable[[Episode], float | None], tasks: tuple[str, ...] | None = None
    ):
        self.name = name
        self._rule = rule
        self.tasks = tasks

    async def score(self, episode: Episode) -> JudgeScore:
        return JudgeScore(self._rule(episode))


def entry_for(result: JudgeScore | None, error: BaseException | None, judge: Judge) -> dict[str, Any]:
    """What lands in ``episode.judges[name]``."""
    entry: dict[str, Any] = {"score": None if result is None else result.score}
    if judge.model:
        entry["model"] = judge.model
    if result is not None and result.rationale:
        entry["rationale"] = result.rationale
    if error is not None:
        entry["error"] = one_line(error)
    cost = result.cost_usd if result is not None else getattr(error, "cost_usd", None)
    if cost is not None:
        entry["cost_usd"] = float(cost)
    return entry


async def score_episode(episode: Episode, judges: list[Judge]) -> None:
    """Score ``episode`` with every applicable judge; errors go into the entry, never out."""
    for judge in judges:
        if not judge.applies_to(episode):
            continue
        try:
            episode.judges[judge.key] = entry_for(await judge.score(episode), None, judge)
        except Exception as error:
            episode.judges[judge.key] = entry_for(None, error, judge)
