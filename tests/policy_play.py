"""Playing episodes of a task with its built-in scripted policies, through the one rollout loop."""

from __future__ import annotations

from lmrl.episode import Episode
from lmrl.rollout import play_policy
from lmrl.task import Task


def play_episode(task: Task, policy: str, seed: int, index: int = 0) -> Episode:
    """One episode of ``policy`` on ``task`` (reset to ``seed``/``index``); it must end cleanly."""
    [episode] = play_policy(task, policy, [(seed, index)])
    assert episode.error is None, episode.error
    assert episode.turns and episode.turns[-1].done, "episode did not end within max_steps"
    return episode


def play(task: Task, policy: str, seed: int, index: int = 0) -> tuple[float, int]:
    """(return, number of actions) of one episode."""
    episode = play_episode(task, policy, seed, index)
    return episode.return_, episode.length


def observations(episode: Episode) -> list[str]:
    """Every observation the episode showed, the first and the final one included."""
    return [turn.observation for turn in episode.turns] + [episode.final_observation]
