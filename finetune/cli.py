"""``lmrl train``: offline RL from logged episodes (the command line's half in ``lmrl.cli``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lmrl.finetune.trainer import ALGORITHMS, TrainConfig, TrainError, train


def add_parser(sub: Any, positive_int: Any, nonneg_float: Any) -> None:
    parser = sub.add_parser(
        "train", help="train a checkpoint from logged episodes (BC, filtered BC, MC, ILQL)"
    )
    parser.add_argument("--algo", required=True, choices=list(ALGORITHMS), help="the algorithm")
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="RUN_DIR",
        help="a run directory of episodes; repeat",
    )
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint directory to write")
    parser.add_argument(
        "--base",
        default="tiny",
        help="tiny or small (from scratch, tokenizer learnt on the task's text), local/smollm2, or a "
        "checkpoint directory (default tiny)",
    )
    parser.add_argument("--epochs", type=positive_int, default=1, help="passes over the data (1)")
    parser.add_argument("--max-steps", type=positive_int, help="optimizer steps (instead of --epochs)")
    parser.add_argument("--seed", type=int, default=0, help="weights, data order and dropout (0)")
    parser.add_argument("--lr", type=nonneg_float, help="learning rate (3e-4 from scratch, 2e-5 pretrained)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="turns per step (32)")
    parser.add_argument("--gamma", type=nonneg_float, help="discount (task default)")
    parser.add_argument(
        "--discount", choices=["per_turn", "per_token"], default="per_turn", help="discounting convention"
    )
    parser.add_argument("--beta", type=nonneg_float, help="MC/ILQL decoding: logits + beta * Q (saved)")
    parser.add_argument("--tau", type=nonneg_float, help="ILQL expectile (task default)")
    parser.add_argument("--polyak", type=nonneg_float, help="ILQL target-Q update rate (task default)")
    parser.add_argument("--cql-weight", type=nonneg_float, help="weight of the CQL term (task default)")
    parser.add_argument("--max-length", type=positive_int, help="context budget in tokens (task default)")
    parser.add_argument("--filter", default="success", help="filtered BC: success or top:FRACTION")
    parser.add_argument(
        "--style",
        choices=["text", "chat"],
        default="text",
        help="text: the paper's raw rendering; chat: through the base model's chat template",
    )
    parser.add_argument("--allow-mixed", action="store_true", help="train on runs of different tasks")
    parser.add_argument("--lora", metavar="r=16[,alpha=32]", help="train LoRA adapters (needs peft)")
    parser.add_argument("--eval-every", type=positive_int, help="evaluate every N steps (and at the end)")
    parser.add_argument(
        "--eval-episodes", type=int, default=25, help="episodes per evaluation, 0 for none (25)"
    )
    parser.add_argument("--eval-seed", type=int, default=1000, help="run seed of the evaluations (1000)")
    parser.add_argument(
        "--eval-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a local agent option for the evaluations, as lmrl run's --local-option (maze: rerank=true "
        "by default); repeat",
    )
    parser.add_argument("--save-every", type=positive_int, default=50, help="resumable state every N steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _lora(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    values: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        if not sep or key.strip() not in ("r", "alpha", "dropout"):
            raise TrainError(f"--lora {text!r} is not r=N[,alpha=N][,dropout=X]")
        values[key.strip()] = json.loads(raw)
    return values


def run(args: argparse.Namespace) -> int:
    """Train; one line and ``TrainError`` for bad input (the CLI turns it into exit 2)."""
    for run_dir in args.data:
        if not (Path(run_dir) / "manifest.json").exists():
            raise TrainError(f"--data {run_dir} is not an lmrl run directory")
    if args.eval_episodes < 0:
        raise TrainError("--eval-episodes must not be negative")
    from lmrl.agents.local_settings import parse_local_options

    try:
        eval_options = parse_local_options(args.eval_option, "--eval-option")
    except ValueError as error:
        raise TrainError(str(error)) from None
    config = TrainConfig(
        algo=args.algo,
        data=[str(d) for d in args.data],
        out=args.out,
        base=args.base,
        epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        lr=args.lr,
        batch_size=args.batch_size,
        gamma=args.gamma,
        discount=args.discount,
        beta=args.beta,
        tau=args.tau,
        polyak=args.polyak,
        cql_weight=args.cql_weight,
        max_length=args.max_length,
        filter=args.filter,
        style=args.style,
        allow_mixed=args.allow_mixed,
        lora=_lora(args.lora),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        eval_seed=args.eval_seed,
        eval_options=eval_options,
        save_every=args.save_every,
    )
    final = train(config, progress=not args.no_progress)
    score = final.get("eval")
    summary = f"wrote {config.out} (play it as local/{config.out})"
    if score:
        summary += (
            f"; {score['episodes']} evaluation episodes: mean return {score['mean_return']:.3g} "
            f"± {score['ci95']:.2g}, normalized {score['normalized']:.1f}, success {score['success']:.0%}"
        )
    from accelerate import PartialState

    if PartialState().is_main_process:  # under accelerate launch, one line, not one per process
        print(summary)
    return 0
