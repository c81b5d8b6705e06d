"""Judges by name: ``--judge NAME`` for rule judges, ``--judge NAME=MODEL`` for LLM judges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lmrl.agents import Agent, AgentConfigError, AgentOptions, make_agent
from lmrl.agents.base import check_options
from lmrl.episode import Episode
from lmrl.judges.base import Judge, RuleJudge
from lmrl.judges.llm import LLMJudge


@dataclass(frozen=True)
class JudgeEntry:
    name: str
    description: str
    kind: str  # "rule" or "llm"
    build: Callable[[Agent | None], Judge]
    tasks: tuple[str, ...] | None = None


_JUDGES: dict[str, JudgeEntry] = {}


def register_rule_judge(
    name: str, description: str, rule: Callable[[Episode], float | None], tasks: tuple[str, ...] | None = None
) -> None:
    _JUDGES[name] = JudgeEntry(name, description, "rule", lambda _: RuleJudge(name, rule, tasks), tasks)


def register_llm_judge(
    name: str,
    description: str,
    rubric: str | dict[str, str],
    scale: tuple[float, float] = (1, 5),
    tasks: tuple[str, ...] | None = None,
) -> None:
    def build(agent: Agent | None) -> Judge:
        assert agent is not None
        return LLMJudge(name, rubric, agent, scale, tasks)

    _JUDGES[name] = JudgeEntry(name, description, "llm", build, tasks)


def judge_entries() -> list[JudgeEntry]:
    return [_JUDGES[name] for name in sorted(_JUDGES)]


def make_judge(spec: str, options: AgentOptions | None = None) -> Judge:
    """``name`` or ``name=model`` -> a judge with its own ``options`` (never the evaluated agent's);
    ``AgentConfigError`` (one line) when that cannot work."""
    name, _, model = (part.strip() for part in spec.partition("="))
    entry = _JUDGES.get(name)
    if entry is None:
        known = ", ".join(sorted(_JUDGES)) or "none"
        raise AgentConfigError(f"unknown judge {name!r}; known judges: {known}")
    if entry.kind == "rule":
        if model:
            raise AgentConfigError(f"judge {name} is a rule judge and takes no model")
        if options is not None and options.given():
            raise AgentConfigError(f"judge {name} is a rule judge and takes no options")
        return entry.build(None)
    if not model:
        raise AgentConfigError(
            f"judge {name} is an LLM judge: name its model, e.g. --judge {name}=openai/gpt-4o-mini"
        )
    agent = make_agent(model, options or AgentOptions())
    check_options(options or AgentOptions(), [agent], f"judge {name}")
    return entry.build(agent)


GENERIC_RUBRIC = (
    "Rate the agent's play: does it follow the task's rules and action format, use what the environment "
    "tells it, and make steady progress toward the goal? 1 = incoherent or ignores the rules, "
    "3 = valid but aimless or repetitive, 5 = purposeful, efficient play a skilled human would recognise."
)


def _invalid_rate(episode: Episode) -> float | None:
    return episode.invalid_count / episode.length if episode.length else None


register_llm_judge(
    "agent-quality", "LLM rating 1-5 of how purposeful and rule-following the agent is", GENERIC_RUBRIC
)
register_rule_judge("invalid-rate", "fraction of the agent's actions that were invalid", _invalid_rate)
