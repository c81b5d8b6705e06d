"""Online RL throughput on a CPU with the tiny model: rollout episodes/s, training tokens/s, and the
share of a round's wall time spent playing vs updating, for PPO, GRPO and online filtered BC side by
side in one run (the same BC start, task and round size).

The start is a tiny from-scratch model given a short BC run on maze-fo behaviour episodes, so that it
says moves; each algorithm then plays ``--rounds`` rounds of ``--episodes`` episodes (cut at
``--max-turns``) and updates on them. Figures are medians over the rounds.

    python bench/online_throughput.py [--rounds 3] [--episodes 64] [--max-turns 20]
    python bench/online_throughput.py --algos ppo --rollout-server   # PPO in-process vs transformers serve

``--rollout-server`` adds a PPO row whose rounds are played by a local ``transformers serve`` (the
``--rollout-server`` path of ``lmrl train``), measured in the same run as the in-process row.
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
    parser.add_argument("--rollout-server", action="store_true", help="add PPO on transformers serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "behavior"
        lmrl.run("maze-fo", "scripted/behavior", episodes=200, out=data, max_turns=20)
        start = root / "bc"
        train(
            TrainConfig(algo="bc", data=[str(data)], out=start, max_steps=args.bc_steps, eval_episodes=0),
            progress=False,
        )
        rows = []
        runs = [(algo, None) for algo in args.algos.split(",")]
        if args.rollout_server:
            runs.append(("ppo", "transformers serve"))
        for algo, server in runs:
            log: list[dict] = []
            config = OnlineConfig(
                algo=algo, task="maze-fo", out=root / f"{algo}-{bool(server)}", base=str(start),
                rounds=args.rounds, episodes_per_round=args.episodes, max_turns=args.max_turns, group_size=8,
            )  # fmt: skip
            with contextlib.ExitStack() as stack:
                if server:
                    config.rollout_server = stack.enter_context(
                        transformers_serve(["--model-timeout", "600"], root / "serve.log")
                    )
                train_online(config, progress=False, on_log=log.append)
            rows.append(
                {
                    "algo": f"{algo} ({server})" if server else algo,
                    "episodes/s": statistics.median(r["episodes_per_s"] for r in log),
                    "train tokens/s": statistics.median(r["tokens_per_s"] for r in log),
                    "rollout share": statistics.median(
                        r["rollout_s"] / (r["rollout_s"] + r["update_s"]) for r in log
                    ),
                    "round s": statistics.median(r["rollout_s"] + r["update_s"] for r in log),
                    "turns/round": statistics.median(r["items"] for r in log),
                }
            )
    print(f"maze-fo, tiny model, {args.episodes} episodes/round (cut at {args.max_turns} turns), "
          f"medians over {args.rounds} rounds")  # fmt: skip
    print("| algorithm | rollout episodes/s | training tokens/s | rollout share | round s | turns trained |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['algo']} | {r['episodes/s']:.1f} | {r['train tokens/s']:,.0f} | {r['rollout share']:.0%} "
            f"| {r['round s']:.1f} | {r['turns/round']:.0f} |"
        )


if __name__ == "__main__":
    main()
