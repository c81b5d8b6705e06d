"""The learning benchmark's diagnostic: how often a checkpoint's greedy choice is right in a task's
decision states (maze-fo's shortest-path moves, Text-Nav's walkthrough commands, Wordle's words
consistent with the feedback so far)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def move_accuracy(checkpoint: Path, task: str, beta: float | None) -> float | None:
    """The share of a task's decision states where the greedy re-ranked choice (BC + beta * value)
    is a right one: maze-fo (the paper's "move accuracy"), a shortest-path move from each of the 25
    start cells; Text-Nav, the walkthrough's command in each state along the walkthrough from each of
    the 8 rooms, with the history so far in the prompt; Wordle, a word consistent with all the feedback
    so far, after one to three random guesses (``WORDLE_STATES`` states). ``None`` for other tasks."""
    states = decision_states(task)
    if states is None:
        return None
    from lmrl.finetune.guidance import load_guidance, rank_batch

    model, requests = _greedy_requests(checkpoint, states)
    guidance = load_guidance(checkpoint, model, beta)[0] if beta else None
    chosen = rank_batch(model, requests, guidance)
    good = [
        candidates[best] in right for (_, candidates, right), (best, _) in zip(states, chosen, strict=True)
    ]
    return sum(good) / len(good)


def _greedy_requests(checkpoint: Path, states: list[tuple[str, list[str], set[str]]]) -> tuple[Any, list]:
    """The checkpoint's model (eval mode) and one greedy re-ranking request per decision state."""
    import random

    from lmrl.finetune import models
    from lmrl.finetune.guidance import RankRequest

    model, tokenizer = models.load(checkpoint, None)
    model.eval()
    requests = [
        RankRequest(
            tokenizer(prompt)["input_ids"],
            [tokenizer(c + "\n", add_special_tokens=False)["input_ids"] for c in candidates],
            0.0,
            random.Random(0),
        )
        for prompt, candidates, _ in states
    ]
    return model, requests


DIAGNOSED_TASKS = ("maze-fo", "textnav-fo", "textnav-po", "wordle")  # the tasks decision_states knows


def decision_states(task: str) -> list[tuple[str, list[str], set[str]]] | None:
    """(the text prompt, the candidate actions as the agent writes them, the right ones) per state."""
    from lmrl.task import Segment
    from lmrl.tasks.registry import make_task

    if task == "maze-fo":
        from lmrl.tasks.maze import ACTIONS, DISTANCE, START_CELLS, move

        maze = make_task(task)
        states = []
        for index, cell in enumerate(START_CELLS):
            prompt = maze.render([Segment("observation", maze.reset(0, index))], "text")
            right = {maze.format_action(a) for a in ACTIONS if DISTANCE[move(cell, a)] < DISTANCE[cell]}
            states.append((prompt, [maze.format_action(a) for a in ACTIONS], right))
        return states
    if task in ("textnav-fo", "textnav-po"):
        from lmrl.tasks.textnav import ROOMS, walkthrough

        states = []
        for index in range(len(ROOMS)):
            house = make_task(task)
            history = [Segment("observation", house.reset(0, index))]
            for command in walkthrough(house.start):
                states.append((house.render(history, "text"), house.candidate_actions(), {command}))
                observation = house.step(command).observation
                history += [Segment("action", command), Segment("observation", observation)]
        return states
    if task == "wordle":
        return _wordle_states()
    return None


WORDLE_STATES = 60


def _wordle_states() -> list[tuple[str, list[str], set[str]]]:
    """Histories of one to three uniformly random guesses (the behaviour policy's usual move), each
    from its own secret; right: the words still consistent with the feedback (never the whole
    vocabulary: states where no guess has narrowed it are left out)."""
    import random

    from lmrl.task import Segment
    from lmrl.tasks.registry import make_task

    states: list[tuple[str, list[str], set[str]]] = []
    rng = random.Random(0)
    index = 0
    while len(states) < WORDLE_STATES:
        game = make_task("wordle")
        history = [Segment("observation", game.reset(10_000 + index))]
        index += 1
        for _ in range(rng.randint(1, 3)):
            guess = rng.choice(game.vocab)
            result = game.step(guess)
            history += [
                Segment("action", game.format_action(guess)),
                Segment("observation", result.observation),
            ]
            if result.terminated:
                break
        if not game.done and len(game.candidates) < len(game.vocab):
            states.append((game.render(history, "text"), game.candidate_actions(), set(game.candidates)))
    return states


def value_table(checkpoint: Path, task: str) -> list[tuple[str, list[float], set[int], int]] | None:
    """Per decision state: its label, the value the checkpoint's heads alone give each candidate
    (beta 1, no BC term), the indices of the right candidates and the value's greedy pick. ``None``
    for a checkpoint without value heads or a task without decision states."""
    states = decision_states(task)
    if states is None or not (checkpoint / "value_heads.json").exists():
        return None
    from lmrl.finetune.guidance import candidate_values, load_guidance

    model, requests = _greedy_requests(checkpoint, states)
    guidance = load_guidance(checkpoint, model, 1.0)[0]
    lines = [prompt.strip().splitlines()[-1] for prompt, _, _ in states]
    shared = len(os.path.commonprefix(lines))  # maze: "The goal is at ... current position is at position "
    rows = []
    values = candidate_values(model, requests, guidance)
    for line, (_, candidates, right), value in zip(lines, states, values, strict=True):
        label = line[shared:][:70]
        right_indices = {i for i, c in enumerate(candidates) if c in right}
        rows.append((label, value, right_indices, max(range(len(value)), key=value.__getitem__)))
    return rows


def main() -> None:
    """``python bench/learning_diagnostics.py CHECKPOINT TASK``: the value of each candidate in each
    decision state, the wrong greedy picks marked (for the four maze moves; Text-Nav and Wordle list
    the greedy pick only)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("task")
    args = parser.parse_args()
    if not (args.checkpoint / "config.json").exists():
        parser.error(f"{args.checkpoint} is not a checkpoint directory")
    if args.task not in DIAGNOSED_TASKS:  # checked by name: building the states is the work itself
        parser.error(f"{args.task} has no decision states ({', '.join(DIAGNOSED_TASKS)} have)")
    rows = value_table(args.checkpoint, args.task)
    if rows is None:  # no value heads (BC, filtered BC): the policy's own greedy picks
        accuracy = move_accuracy(args.checkpoint, args.task, None)
        print(f"no value heads: the greedy (BC) pick is right in {accuracy:.1%} of the decision states")
        return
    for label, values, right, pick in rows:
        shown = (
            " ".join(f"{v:7.2f}" for v in values) if len(values) <= 4 else f"pick {pick}: {values[pick]:.2f}"
        )
        print(f"{label:<72} {shown}  {'' if pick in right else 'WRONG'}")
    wrong = sum(pick not in right for *_, right, pick in rows)
    print(f"{len(rows) - wrong} of {len(rows)} greedy value picks right")


if __name__ == "__main__":
    main()
