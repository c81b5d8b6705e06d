"""LLM judges: a rubric, an agent (any spec) and a robust score parser."""

from __future__ import annotations

import random
import re

from lmrl.agents import Agent
from lmrl.episode import Episode
from lmrl.judges.base import Judge, JudgeScore
from lmrl.task import Prompt

_SCORE = re.compile(r"(?i)\bscore\b[^0-9\n]{0,12}(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?")
_FRACTION = re.compile(r"\b(\d+(?:\.\d+)?)\s*/\s*(\d+)\b")
_RATIONALE = re.compile(r"(?is)\brationale\b\s*[:\-]\s*(.+)")


class JudgeParseError(ValueError):
    """The judge model's reply held no usable score."""

    cost_usd: float | None = None


def parse_score(reply: str, low: float, high: float) -> tuple[float, str | None]:
    """(score, rationale) from replies like ``Score: 4``, ``**Score:** 4/5``, ``I give it 3/5``."""
    found = _SCORE.search(reply) or _FRACTION.search(reply)
    if not found:
        raise JudgeParseError(f"no score in judge reply: {reply[:120]!r}")
    value = float(found.group(1))
    if found.group(2) and float(found.group(2)) != high:
        raise JudgeParseError(f"judge scored out of {found.group(2)}, expected {high:g}: {found.group(0)!r}")
    if not low <= value <= high:
        raise JudgeParseError(f"judge score {value:g} outside [{low:g}, {high:g}]")
    rationale = _RATIONALE.search(reply)
    return value, (rationale.group(1).strip()[:1000] if rationale else None)


def transcript(episode: Episode) -> str:
    """The episode as a plain dialogue for a judge: environment and agent lines, with rewards."""
    lines = []
    for number, turn in enumerate(episode.turns, 1):
        lines.append(f"[environment] {turn.observation}")
        lines.append(f"[agent, turn {number}] {turn.raw_output.strip()}")
    lines.append(f"[environment] {episode.final_observation}")
    lines.append(f"(return {episode.return_:g}, success {episode.success})")
    return "\n".join(lines)


class LLMJudge(Judge):
    def __init__(
        self,
        name: str,
        rubric: str | dict[str, str],
        agent: Agent,
        scale: tuple[float, float] = (1, 5),
        tasks: tuple[str, ...] | None = None,
    ) -> None:
        self.name = name
        self.rubric = rubric
        self.agent = agent
        self.model = agent.spec
        self.scale = scale
        self.tasks = tasks

    def messages(self, episode: Episode) -> list[dict[str, str]]:
        low, high = self.scale
        system = (
            f"You are an impartial judge of a multi-turn episode of the task '{episode.task}'.\n"
            f"{self.rubric_for(episode.task).strip()}\n\n"
            "Reply with exactly two lines:\n"
            f"Score: <a number from {low:g} to {high:g}>\nRationale: <one sentence>"
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": transcript(episode)}]

    def rubric_for(self, task: str) -> str:
        """The rubric (one text, or one per task)."""
        return self.rubric if isinstance(self.rubric, str) else self.rubric[task]

    async def score(self, episode: Episode) -> JudgeScore:
        prompt = Prompt(None, [], "chat", random.Random(episode.seed), role=f"judge:{self.name}")  # type: ignore[arg-type]
        prompt.__dict__["messages"] = self.messages(episode)
        prompt.__dict__["text"] = "\n\n".join(m["content"] for m in prompt.__dict__["messages"])
        completion = await self.agent.act(prompt)
        try:
            value, rationale = parse_score(completion.text, *self.scale)
        except JudgeParseError as error:
            error.cost_usd = completion.cost_usd  # a reply without a score was still paid for
            raise
        return JudgeScore(value, rationale, completion.cost_usd)

    async def aclose(self) -> None:
        await self.agent.aclose()
