"""Policy extraction's cost: a value-guided checkpoint playing the same episodes three ways.

``generated``: token-by-token guidance (logits + beta * Q; the paper's); ``proposalsK``: K replies
proposed by the BC policy, the distinct actions ranked by BC likelihood + beta * Q
(``--local-option proposals=K``); ``rerank``: the task's own candidate actions ranked the same way
(``--local-option rerank=true``, where the task lists them). Each mode plays the same episodes (same
run seed) through the real runner, concurrently; modes alternate within each repeat so that a noisy
machine slows them alike. Prints turns/s (median over repeats), its ratio to ``generated`` measured in
the same run, and the success rate (of the last repeat; every repeat plays the same seeds).

    python bench/extraction_cost.py --checkpoint DIR [--task textnav-fo] [--episodes 32]
        [--modes generated,proposals4,proposals8,rerank] [--beta B] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio
from _common import median  # also sets the environment and sys.path

from lmrl.agents import AgentOptions
from lmrl.rundir import load_episodes
from lmrl.runner import RunConfig, Runner


def mode_options(mode: str) -> dict:
    if mode == "generated":
        return {}
    if mode == "rerank":
        return {"rerank": True}
    if mode.startswith("proposals") and mode.removeprefix("proposals").isdigit():
        return {"proposals": int(mode.removeprefix("proposals"))}
    raise SystemExit(f"unknown mode {mode!r}: generated, proposalsK or rerank")


def play(checkpoint: Path, args: argparse.Namespace, mode: str, out: Path) -> tuple[float, float]:
    """Turns per second of one mode's run, and its success rate."""
    extra = mode_options(mode) | ({"beta": args.beta} if args.beta is not None else {})
    config = RunConfig(
        out=out, tasks=[args.task], models=[f"local/{checkpoint.resolve()}"], episodes=args.episodes,
        concurrency=args.episodes, seed=args.seed, style="text", agent_options=AgentOptions(extra=extra),
    )  # fmt: skip
    started = time.perf_counter()
    result = anyio.run(Runner(config).run)
    seconds = time.perf_counter() - started
    episodes = load_episodes(out)
    return result.turns / seconds, sum(e.success for e in episodes) / len(episodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="an MC/ILQL checkpoint directory")
    parser.add_argument("--task", default="textnav-fo")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=3000, help="run seed (the same for every mode)")
    parser.add_argument("--modes", default="generated,proposals4,proposals8,rerank")
    parser.add_argument("--beta", type=float, help="override the checkpoint's beta")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (args.checkpoint / "value_heads.json").exists():
        raise SystemExit(f"{args.checkpoint} is not an MC/ILQL checkpoint (no value_heads.json)")
    modes = args.modes.split(",")
    for mode in modes:
        mode_options(mode)
    rates: dict[str, list[float]] = {m: [] for m in modes}
    success: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeat):
            for mode in modes:
                rate, success[mode] = play(args.checkpoint, args, mode, Path(tmp) / f"{mode}-{repeat}")
                rates[mode].append(rate)
                print(f"  repeat {repeat} {mode}: {rate:.1f} turns/s", flush=True)
    base = median(rates[modes[0]])
    print(f"\n{args.task}, {args.episodes} concurrent episodes, {args.repeat} repeats; ratio to {modes[0]}")
    print(f"{'mode':<14}{'turns/s':>10}{'ratio':>8}{'success':>9}")
    for mode in modes:
        rate = median(rates[mode])
        print(f"{mode:<14}{rate:>10.1f}{rate / base:>8.2f}{success[mode]:>9.0%}")


if __name__ == "__main__":
    main()
