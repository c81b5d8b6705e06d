"""The one episode loop: terminated vs truncated, the same episodes as the runner, old records."""

from __future__ import annotations

import json

import anyio
import pytest

from lmrl.agents import ScriptedAgent
from lmrl.episode import Episode
from lmrl.rollout import derive_seed, episode_history, rollout
from lmrl.rundir import load_episodes
from lmrl.runner import RunConfig, Runner
from lmrl.tasks import make_task
from lmrl.tasks.maze import START_CELLS, SUBMAZE


def maze_index_outside_the_goal_submaze() -> int:
    return next(i for i, cell in enumerate(START_CELLS) if SUBMAZE[cell] != "goal")


@pytest.mark.anyio
async def test_a_real_end_terminates() -> None:
    episode = await rollout("maze-fo", ScriptedAgent("optimal"), seed=1, index=0)
    assert episode.success and episode.terminated and not episode.truncated
    assert episode.turns[-1].terminated and not any(t.done for t in episode.turns[:-1])


@pytest.mark.anyio
async def test_the_tasks_own_step_cap_truncates() -> None:
    # The behaviour policy stays in its start's sub-maze: outside the goal's it never arrives.
    episode = await rollout(
        "maze-fo", ScriptedAgent("behavior"), seed=3, index=maze_index_outside_the_goal_submaze()
    )
    assert episode.length == 101 and episode.return_ == -101
    assert episode.truncated and not episode.terminated and episode.turns[-1].truncated
    assert "cut_by" not in episode.info  # the protocol's own cap, not --max-turns


@pytest.mark.anyio
async def test_max_turns_truncates_and_says_so() -> None:
    episode = await rollout("maze-fo", ScriptedAgent("random"), seed=3, index=0, max_turns=4)
    assert episode.length == 4 and episode.truncated and not episode.terminated
    assert episode.info["cut_by"] == "max_turns"


@pytest.mark.anyio
@pytest.mark.parametrize(("task", "policy"), [("wordle", "random"), ("textnav-fo", "random")])
async def test_other_tasks_split_the_two_ends(task: str, policy: str) -> None:
    ends = set()
    for seed in range(30):
        episode = await rollout(task, ScriptedAgent(policy), seed=seed, index=seed)
        assert episode.turns[-1].done and episode.terminated != episode.truncated
        ends.add((episode.terminated, episode.truncated))
    if task == "wordle":  # six guesses are the game's own rule: a loss, not a cut
        assert ends == {(True, False)}
    else:  # Text-Nav's 15-step cap truncates; eating the food or winning terminates
        assert ends == {(True, False), (False, True)}


def test_rollout_gives_the_runners_episode(tmp_path) -> None:
    config = RunConfig(
        out=tmp_path / "run", tasks=["twenty-questions"], models=["scripted/behavior"], episodes=3
    )
    anyio.run(Runner(config).run)
    for logged in load_episodes(tmp_path / "run"):
        again = anyio.run(
            lambda e=logged: rollout(
                "twenty-questions", ScriptedAgent("behavior"), e.seed, e.index, key=e.key
            )
        )
        assert logged.seed == derive_seed(0, "twenty-questions", logged.index, 0)
        strip = ("started_at", "wall_s", "run_id", "config_id")  # the runner names its settings
        assert {k: v for k, v in again.to_dict().items() if k not in strip} == {
            k: v for k, v in logged.to_dict().items() if k not in strip
        }


@pytest.mark.anyio
async def test_episode_history_rebuilds_what_the_agent_saw() -> None:
    task = make_task("maze-fo")
    seen = []

    class Recorder(ScriptedAgent):
        async def act(self, prompt):
            seen.append(prompt.messages)
            return await super().act(prompt)

    episode = await rollout(task, Recorder("random"), seed=5, index=2, max_turns=6)
    history = episode_history(task, episode)
    assert len(history) == 2 * episode.length + 1
    # The prompt of turn k is the history up to its observation.
    for k, messages in enumerate(seen):
        assert task.render(history[: 2 * k + 1], "chat") == messages


def test_schema_1_records_still_load() -> None:
    v1 = {
        "schema_version": 1,
        "run_id": "old",
        "key": "maze-fo/scripted/random/0/0",
        "task": "maze-fo",
        "task_version": "1",
        "index": 0,
        "epoch": 0,
        "seed": 1,
        "models": {"agent": "scripted/random"},
        "turns": [
            {"observation": "a", "raw_output": "move up", "action": "move up", "invalid": False, "reward": -1,
             "done": False},
            {"observation": "b", "raw_output": "move up", "action": "move up", "invalid": False, "reward": -1,
             "done": False},
        ],
        "return": -2,
        "length": 2,
        "info": {"truncated": True},
    }  # fmt: skip
    cut = Episode.from_json(json.dumps(v1))
    assert cut.truncated and not cut.terminated and cut.turns[-1].truncated and cut.return_ == -2
    v1["turns"][-1]["done"] = True
    v1["info"] = {}
    ended = Episode.from_json(json.dumps(v1))
    assert ended.terminated and not ended.truncated and ended.turns[-1].terminated
    assert Episode.from_json(ended.to_json()).to_dict() == ended.to_dict()
