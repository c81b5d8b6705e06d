"""Online RL throughput on a CPU with the tiny model: rollout episodes/s, training tokens/s, and the
share of a round's wall time spent playing vs updating, for PPO, GRPO and online filtered BC side by
side in one run (the same BC start, task and round size).

The start is a tiny from-scratch model given a short BC run on maze-fo behaviour episodes, so that it
says moves; each algorithm then plays ``--rounds`` rounds of ``--episodes`` episodes (cut at
``--max-turns``) and updates on them. Figures are medians over the rounds.

    python bench/online_throughput.py [--rounds 3] [--episodes 64] [--max-turns 20]
    python bench/online_throughput.py --algos ppo --rollout-server   # PPO in-process vs transformers serve
    python bench/online_throughput.py --task maze-po --algos ppo,grpo --packing auto,off  # layouts

``--rollout-server`` adds a PPO row whose rounds are played by a local ``transformers serve`` (the
``--rollout-server`` path of ``lmrl train``), measured in the same run as the in-process row.
``--packing auto,off`` runs each algorithm with both update layouts (on a task whose rendering grows,
``auto`` updates one sequence per episode) and prints the update-time ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

import _common  # noqa: F401

import lmrl
from lmrl.finetune.online import OnlineConfig, train_online
from lmrl.finetune.rollout_server import transformers_serve
from lmrl.finetune.trainer import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--max-turns", type=int, default=20)
    parser.add_argument("--bc-steps", type=int, default=300)
    parser.add_argument("--algos", default="ppo,grpo,online-filtered-bc")
    parser.add_argument("--task", default="maze-fo")
    parser.add_argument("--packing", default="auto", help="update layouts to run: auto, off or auto,off")
    parser.add_argument("--rollout-server", action="store_true", help="add PPO on transformers serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "behavior"
        lmrl.run(args.task, "scripted/behavior", episodes=200, out=data, max_turns=20)
        start = root / "bc"
        train(
            TrainConfig(algo="bc", data=[str(data)], out=start, max_steps=args.bc_steps, eval_episodes=0),
            progress=False,
        )
        rows = []
        layouts = args.packing.split(",")
        runs = [(algo, None, packing) for algo in args.algos.split(",") for packing in layouts]
        if args.rollout_server:
            runs.append(("ppo", "transformers serve", "auto"))
        for algo, server, packing in runs:
            log: list[dict] = []
            config = OnlineConfig(
                algo=algo, task=args.task, out=root / f"{algo}-{bool(server)}-{packing}", base=str(start),
                rounds=args.rounds, episodes_per_round=args.episodes, max_turns=args.max_turns, group_size=8,
                packing=packing,
            )  # fmt: skip
            with contextlib.ExitStack() as stack:
                if server:
                    config.rollout_server = stack.enter_context(
                        transformers_serve(["--model-timeout", "600"], root / "serve.log")
                    )
                train_online(config, progress=False, on_log=log.append)
            label = f"{algo} ({server})" if server else algo
            if len(layouts) > 1:
                label += " (packed)" if all(r["packed"] for r in log) else " (per turn)"
            rows.append(
                {
                    "algo": label,
                    "update s": statistics.median(r["update_s"] for r in log),
                    "episodes/s": statistics.median(r["episodes_per_s"] for r in log),
                    "train tokens/s": statistics.median(r["tokens_per_s"] for r in log),
                    "rollout share": statistics.median(
                        r["rollout_s"] / (r["rollout_s"] + r["update_s"]) for r in log
                    ),
                    "round s": statistics.median(r["rollout_s"] + r["update_s"] for r in log),
                    "turns/round": statistics.median(r["items"] for r in log),
                }
            )
    print(f"{args.task}, tiny model, {args.episodes} episodes/round (cut at {args.max_turns} turns), "
          f"medians over {args.rounds} rounds")  # fmt: skip
    print(
        "| algorithm | rollout episodes/s | update s | training tokens/s | rollout share | round s "
        "| turns trained |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['algo']} | {r['episodes/s']:.1f} | {r['update s']:.1f} | {r['train tokens/s']:,.0f} "
            f"| {r['rollout share']:.0%} | {r['round s']:.1f} | {r['turns/round']:.0f} |"
        )
    if len(layouts) > 1:
        for algo in args.algos.split(","):
            pair = {r["algo"]: r["update s"] for r in rows if r["algo"].startswith(f"{algo} (")}
            packed, per_turn = pair.get(f"{algo} (packed)"), pair.get(f"{algo} (per turn)")
            if packed and per_turn:
                print(
                    f"{algo}: update {per_turn / packed:.1f}x faster packed "
                    f"({per_turn:.1f} s vs {packed:.1f} s per round)"
                )


if __name__ == "__main__":
    main()
