"""Dialogue tasks with their built-in simulators.

1. Throughput: episodes and turns per second through the real runner with an instant scripted agent.
2. The behaviour policies (the paper's dataset policies) against the paper's dataset (Table 1), with the
   share of their questions the oracle was not sure about (target <= 10%); Car Dealer in its default
   reward and in the paper's literal formula, beside the "pitch the priciest car, never sell" exploit.
3. Oracle truthfulness on the hand-labelled sets in tests/data (accuracy on the questions it answers,
   target >= 95%; the share it is not sure about).

    python bench/dialogue_tasks.py [--episodes 632]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import _common  # noqa: F401
import anyio

from lmrl.rundir import load_episodes
from lmrl.runner import RunConfig, Runner

ROOT = Path(__file__).resolve().parent.parent
PAPER = {  # dataset statistics: success, mean return, mean length
    "twenty-questions": (0.31, -17.3, 14.9),
    "guess-my-city": (0.53, -18.8, 18.8),
    "car-dealer": (0.53, 0.562, 16.5),
}
ROWS = [  # task, agent, task options, label
    ("twenty-questions", "scripted/behavior", {}, ""),
    ("twenty-questions", "scripted/random", {}, ""),
    ("guess-my-city", "scripted/behavior", {}, ""),
    ("guess-my-city", "scripted/random", {}, ""),
    ("car-dealer", "scripted/behavior", {}, "default reward"),
    ("car-dealer", "scripted/behavior", {"reward_mode": "paper"}, "paper reward"),
    ("car-dealer", "scripted/overprice", {}, "default reward"),
    ("car-dealer", "scripted/overprice", {"reward_mode": "paper"}, "paper reward"),
    ("car-dealer", "scripted/random", {}, "default reward"),
]


def unsure_share(episodes) -> str:
    """Share of oracle answers that were "not sure" (turns whose info says whether it mapped)."""
    flags = [t.info["oracle_mapped"] for e in episodes for t in e.turns if "oracle_mapped" in t.info]
    return f"{1 - statistics.mean(flags):.1%}" if flags else ""


def play(task: str, agent: str, options: dict, episodes: int):
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(
            out=Path(tmp) / "run",
            tasks=[task],
            models=[agent],
            episodes=episodes,
            concurrency=64,
            task_options={task: options} if options else {},
        )
        result = anyio.run(Runner(config).run)
        return result, load_episodes(Path(tmp) / "run")


def labels(name: str) -> list[dict]:
    lines = (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=632)
    args = parser.parse_args()
    print(f"{args.episodes} episodes per row, concurrency 64, built-in simulator partner")
    print(
        "| task | agent | episodes/s | turns/s | success | mean return | mean length | oracle not sure "
        "| paper dataset |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for task, agent, options, label in ROWS:
        result, episodes = play(task, agent, options, args.episodes)
        success, ret, length = PAPER[task]
        paper = f"{success:.2f} / {ret:g} / {length:g}" if agent.endswith("behavior") else ""
        if task == "car-dealer" and agent.endswith("behavior") and not options:
            paper = "(paper's formula: next row)"
        print(
            f"| {task} | {agent}{f' ({label})' if label else ''} | {result.finished / result.wall_s:,.0f} "
            f"| {result.turns / result.wall_s:,.0f} "
            f"| {statistics.mean(e.success for e in episodes):.3f} "
            f"| {statistics.mean(e.return_ for e in episodes):.3f} "
            f"| {statistics.mean(e.length for e in episodes):.1f} | {unsure_share(episodes)} | {paper} |"
        )

    from lmrl.tasks import guess_my_city, twenty_questions

    print("\nOracles on the hand-labelled sets (tests/data)")
    print("| oracle | labels | answered | accuracy on answered | not sure | wrong |")
    print("|---|---|---|---|---|---|")
    for name, module, file in (
        ("twenty-questions kb-oracle", twenty_questions, "twenty_questions_oracle_labels.jsonl"),
        ("guess-my-city city-oracle", guess_my_city, "guess_city_oracle_labels.jsonl"),
    ):
        rows = labels(file)
        found = module.oracle_accuracy(rows)
        print(
            f"| {name} | {len(rows)} | {found['mapped']:.0f} | {found['accuracy']:.1%} "
            f"| {found['unmapped_share']:.1%} | {len(found['wrong'])} |"
        )


if __name__ == "__main__":
    main()
