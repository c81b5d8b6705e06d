"""An invalid reply is recorded with its reason and told to the agent in the next observation."""

from __future__ import annotations

import pytest

from lmrl.agents import Agent, Completion
from lmrl.parsing import REASONS
from lmrl.rollout import rollout
from lmrl.tasks import make_task


class Replies(Agent):
    """Says the given replies in turn and keeps every prompt it was shown."""

    def __init__(self, replies: list[str]) -> None:
        self.spec = "test/replies"
        self.replies = list(replies)
        self.prompts: list = []  # what each turn showed: chat messages or text

    async def act(self, prompt) -> Completion:
        self.prompts.append(prompt.messages if prompt.style == "chat" else prompt.text)  # rendered now
        return Completion(text=self.replies.pop(0))


async def play(replies: list[str], style: str):
    agent = Replies(replies)
    episode = await rollout(make_task("maze-fo"), agent, seed=1, index=0, style=style, max_turns=len(replies))
    return episode, agent.prompts


@pytest.mark.anyio
async def test_the_reason_is_recorded_and_told_in_chat_style() -> None:
    episode, prompts = await play(["I could move up or move down.", "", "Action: move right"], "chat")
    assert [t.invalid_reason for t in episode.turns] == ["ambiguous", "empty", None]
    assert [t.invalid for t in episode.turns] == [True, True, False]
    second = prompts[1][-1]["content"]
    assert second.startswith(
        f"(Your last reply was not accepted: {REASONS['ambiguous']} (move up, move down)."
    )
    assert "Action: move up" in second.splitlines()[0]  # the format reminder
    assert second.splitlines()[1] == episode.turns[1].observation  # the observation itself is unchanged
    third = prompts[2][-1]["content"]
    assert third.startswith(f"(Your last reply was not accepted: {REASONS['empty']}")
    # Earlier notes stay in the history; a valid reply gets no note.
    assert sum("not accepted" in m["content"] for m in prompts[2]) == 2


@pytest.mark.anyio
async def test_text_style_keeps_the_papers_wording() -> None:
    episode, prompts = await play(["garbage", "move up"], "text")
    assert episode.turns[0].invalid_reason == "no-action"
    assert "not accepted" not in prompts[1]
