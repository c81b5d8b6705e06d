"""``lmrl train``: offline RL from logged episodes, online RL on live episodes (the command line's half
in ``lmrl.cli``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lmrl.finetune.models import SIZES
from lmrl.finetune.online import ONLINE_ALGORITHMS, OnlineConfig, train_online
from lmrl.finetune.trainer import (
    ALGORITHMS,
    BACKUPS,
    HEAD_SHAPES,
    LR_SCHEDULES,
    OPTIMIZER_DEFAULTS,
    POLICIES,
    TRUNCATIONS,
    TrainConfig,
    TrainError,
    optimizer_setting_problem,
    train,
)


def add_parser(sub: Any, positive_int: Any, nonneg_float: Any) -> None:
    parser = sub.add_parser(
        "train",
        help="train a checkpoint: offline from logged episodes (BC, filtered BC, MC, ILQL) or online "
        "on live episodes (PPO, online filtered BC, GRPO)",
    )
    parser.add_argument(
        "--algo", required=True, choices=[*ALGORITHMS, *ONLINE_ALGORITHMS], help="the algorithm"
    )
    parser.add_argument(
        "--data", action="append", default=[], metavar="RUN_DIR", help="offline: a run directory; repeat"
    )
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint directory to write")
    parser.add_argument(
        "--base",
        default="tiny",
        help=f"{', '.join(SIZES)} (from scratch, tokenizer learnt on the task's text), local/smollm2, "
        "or a checkpoint directory (default tiny)",
    )
    parser.add_argument("--epochs", type=positive_int, default=1, help="passes over the data (1)")
    parser.add_argument("--max-steps", type=positive_int, help="optimizer steps (instead of --epochs)")
    parser.add_argument("--seed", type=int, default=0, help="weights, data order and dropout (0)")
    parser.add_argument("--lr", type=nonneg_float, help="learning rate (3e-4 from scratch, 2e-5 pretrained)")
    parser.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help="offline: constant lr, or linear/cosine decay to 0 over the run's steps (constant)",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=OPTIMIZER_DEFAULTS["warmup_steps"],
        help="offline: the lr rises linearly from 0 over these first steps, then follows --lr-schedule "
        f"({OPTIMIZER_DEFAULTS['warmup_steps']})",
    )
    parser.add_argument(
        "--adam-beta2",
        type=nonneg_float,
        default=OPTIMIZER_DEFAULTS["adam_beta2"],
        help=f"offline: AdamW's second-moment decay ({OPTIMIZER_DEFAULTS['adam_beta2']})",
    )
    parser.add_argument("--batch-size", type=positive_int, default=32, help="turns per step (32)")
    parser.add_argument("--gamma", type=nonneg_float, help="discount (task default)")
    parser.add_argument(
        "--discount", choices=["per_turn", "per_token"], default="per_turn", help="discounting convention"
    )
    parser.add_argument("--beta", type=nonneg_float, help="MC/ILQL decoding: logits + beta * Q (saved)")
    parser.add_argument("--tau", type=nonneg_float, help="ILQL expectile (task default)")
    parser.add_argument("--polyak", type=nonneg_float, help="ILQL target-Q update rate (task default)")
    parser.add_argument(
        "--backup",
        choices=BACKUPS,
        default=BACKUPS[0],
        help="ILQL: values back up one token per hop (the paper) or one whole action (a turn) per hop",
    )
    parser.add_argument(
        "--heads",
        choices=HEAD_SHAPES,
        default=HEAD_SHAPES[0],
        help="MC/ILQL value heads: 2-layer MLPs as wide as the model (the paper's; the default) or linear",
    )
    parser.add_argument(
        "--truncation",
        choices=TRUNCATIONS,
        default=TRUNCATIONS[0],
        help="MC: a truncated episode's return is the rewards observed (the paper's) or bootstraps the "
        "behaviour value of the state it was cut in",
    )
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default=POLICIES[0],
        help="MC/ILQL: the BC and value losses train the shared network (the paper's; the default), or "
        "frozen: the base's weights stay as they are (the policy it plays) and only the value heads "
        "learn, on its features",
    )
    parser.add_argument("--cql-weight", type=nonneg_float, help="weight of the CQL term (task default)")
    parser.add_argument(
        "--value-weight",
        type=nonneg_float,
        help="MC/ILQL: weight of the value losses (Q, V, CQL) against BC's on the shared network (1)",
    )
    parser.add_argument("--max-length", type=positive_int, help="context budget in tokens (task default)")
    parser.add_argument(
        "--filter",
        help="filtered BC: success or top:FRACTION (default: the paper's for the task: top:0.3 on "
        "Wordle, top:0.1 on the dialogue tasks, success elsewhere)",
    )
    parser.add_argument(
        "--style",
        choices=["text", "chat"],
        default="text",
        help="text: the paper's raw rendering; chat: through the base model's chat template",
    )
    parser.add_argument("--allow-mixed", action="store_true", help="train on runs of different tasks")
    parser.add_argument(
        "--packing",
        choices=["auto", "off"],
        default="auto",
        help="one sequence per episode when the renderings only grow (auto), or one per turn",
    )
    parser.add_argument("--lora", metavar="r=16[,alpha=32]", help="train LoRA adapters (needs peft)")
    parser.add_argument(
        "--eval-every", type=positive_int, help="evaluate every N steps (offline; and at the end) or rounds"
    )
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
    parser.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="a task option for the rollouts and evaluations, as lmrl run's (e.g. "
        "endgames.opponent_depth=5); repeat",
    )
    parser.add_argument("--save-every", type=positive_int, default=50, help="resumable state every N steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    online = parser.add_argument_group("online (ppo, online-filtered-bc, grpo)")
    online.add_argument("--task", help="the task the policy plays")
    online.add_argument("--rounds", type=positive_int, default=10, help="rollout + update rounds (10)")
    online.add_argument("--episodes-per-round", type=positive_int, default=64, help="episodes per round (64)")
    online.add_argument("--group-size", type=positive_int, default=8, help="grpo: episodes per start (8)")
    online.add_argument(
        "--credit", choices=["turn", "episode"], default="turn", help="grpo: per-turn or per-episode credit"
    )
    online.add_argument("--scale", action="store_true", help="grpo: divide advantages by the group's std")
    online.add_argument("--update-epochs", type=positive_int, help="passes over each round (ppo 4, else 1)")
    online.add_argument("--kl-coef", type=nonneg_float, help="KL to the starting policy (ppo 0.001, else 0)")
    online.add_argument("--kl-target", type=nonneg_float, help="ppo: adapt the KL coefficient toward this")
    online.add_argument("--lam", type=nonneg_float, default=0.95, help="ppo: GAE lambda (0.95)")
    online.add_argument("--clip", type=nonneg_float, default=0.2, help="ratio clip (0.2)")
    online.add_argument(
        "--value-trunk", action="store_true", help="ppo: the value loss trains the shared trunk too"
    )
    online.add_argument("--bc-data", action="append", default=[], metavar="RUN_DIR", help="ppo: BC dataset")
    online.add_argument("--bc-weight", type=nonneg_float, default=0.0, help="ppo: weight of the BC loss (0)")
    online.add_argument(
        "--role", action="append", default=[], metavar="ROLE=SPEC", help="fill a partner role; repeat"
    )
    online.add_argument("--concurrency", type=positive_int, default=64, help="episodes played at once (64)")
    online.add_argument("--max-turns", type=positive_int, help="lower the task's step cap")
    online.add_argument(
        "--rollout-server",
        metavar="URL",
        help="play the rounds on an OpenAI-compatible server (vLLM, SGLang, transformers serve), e.g. "
        "http://127.0.0.1:8000/v1, instead of in-process",
    )
    online.add_argument(
        "--rollout-sync",
        default="path",
        metavar="path|post:/ROUTE",
        help="how each round's weights reach the server: path (requests name the round's checkpoint "
        "directory: transformers serve) or post:/ROUTE (POST {model_path} there: SGLang's "
        "/update_weights_from_disk) (path)",
    )
    online.add_argument(
        "--rollout-task-option",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="a task option for the rollouts only, over --task-option: the training distribution "
        "(e.g. endgames.positions=random; evaluations keep the task's evaluation set); repeat",
    )
    online.add_argument("--rollout-model", help="post: the served model's name (the first listed)")
    online.add_argument(
        "--rollout-request",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra field on every rollout request, e.g. return_tokens_as_token_ids=true (vLLM); repeat",
    )


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
    if args.algo in ONLINE_ALGORITHMS:
        return _run_online(args)
    if not args.data:
        raise TrainError(f"--algo {args.algo} trains offline: give --data RUN_DIR")
    if args.rollout_server:
        raise TrainError(f"--rollout-server plays online rounds; --algo {args.algo} trains offline")
    if args.rollout_task_option:
        raise TrainError(f"--rollout-task-option is for online rounds; --algo {args.algo} trains offline")
    for run_dir in args.data:
        if not (Path(run_dir) / "manifest.json").exists():
            raise TrainError(f"--data {run_dir} is not an lmrl run directory")
    if args.eval_episodes < 0:
        raise TrainError("--eval-episodes must not be negative")
    for name in OPTIMIZER_DEFAULTS:
        if problem := optimizer_setting_problem(name, getattr(args, name)):
            raise TrainError(f"--{name.replace('_', '-')} {problem}")
    eval_options = _eval_options(args)
    config = TrainConfig(
        algo=args.algo,
        data=[str(d) for d in args.data],
        out=args.out,
        base=args.base,
        epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        adam_beta2=args.adam_beta2,
        batch_size=args.batch_size,
        gamma=args.gamma,
        discount=args.discount,
        beta=args.beta,
        tau=args.tau,
        polyak=args.polyak,
        backup=args.backup,
        heads=args.heads,
        truncation=args.truncation,
        policy=args.policy,
        cql_weight=args.cql_weight,
        value_weight=args.value_weight,
        max_length=args.max_length,
        filter=args.filter,
        packing=args.packing,
        style=args.style,
        allow_mixed=args.allow_mixed,
        lora=_lora(args.lora),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        eval_seed=args.eval_seed,
        eval_options=eval_options,
        eval_task_options=_task_options(args.task_option, "--task-option", _dataset_task(args.data)),
        save_every=args.save_every,
    )
    final = train(config, progress=not args.no_progress)
    score = final.get("eval")
    summary = f"wrote {config.out} (play it as local/{config.out})"
    if final.get("already_trained"):
        summary = f"{config.out} is already trained: nothing to do (play it as local/{config.out})"
    if score:
        summary += (
            f"; {score['episodes']} evaluation episodes: mean return {score['mean_return']:.3g} "
            f"± {score['ci95']:.2g}, normalized {score['normalized']:.1f}, success {score['success']:.0%}"
        )
    from accelerate import PartialState

    if PartialState().is_main_process:  # under accelerate launch, one line, not one per process
        print(summary)
    return 0


def _eval_options(args: argparse.Namespace) -> dict[str, Any]:
    from lmrl.agents.local_settings import parse_local_options

    try:
        return parse_local_options(args.eval_option, "--eval-option")
    except ValueError as error:
        raise TrainError(str(error)) from None


def _dataset_task(run_dirs: list[Path]) -> str:
    """The task of the first run directory (``train`` checks that the others match)."""
    from lmrl.rundir import read_manifest

    return sorted(read_manifest(Path(run_dirs[0]))["tasks"])[0]


def _task_options(items: list[str], flag: str, task: str) -> dict[str, Any]:
    """``NAME.KEY=VALUE`` items for ``task`` (the only task a training run plays), checked against it."""
    from lmrl.cli_options import UsageError, task_options
    from lmrl.finetune.online import check_task_options

    try:
        options = task_options(items, [task], flag)
    except UsageError as error:
        raise TrainError(str(error)) from None
    check_task_options(task, options.get(task, {}))
    return options.get(task, {})


def _run_online(args: argparse.Namespace) -> int:
    if not args.task:
        raise TrainError(f"--algo {args.algo} trains online: give --task TASK")
    if args.data:
        raise TrainError(f"--algo {args.algo} plays its own episodes; --data is for offline algorithms")
    if args.lr_schedule != "constant":
        raise TrainError(f"--lr-schedule is for offline algorithms; --algo {args.algo} keeps its rate")
    if any(getattr(args, name) != default for name, default in OPTIMIZER_DEFAULTS.items()):
        raise TrainError(f"--warmup-steps and --adam-beta2 are offline settings, not --algo {args.algo}")
    if args.heads != HEAD_SHAPES[0]:
        raise TrainError(f"--heads is for MC and ILQL; --algo {args.algo} has its own value head")
    if args.truncation != TRUNCATIONS[0]:
        raise TrainError(f"--truncation is for MC; --algo {args.algo} bootstraps a truncated end already")
    if args.backup != BACKUPS[0]:
        raise TrainError(f"--backup is for offline ILQL; --algo {args.algo} trains online")
    if args.policy != POLICIES[0]:
        raise TrainError(f"--policy is for MC and ILQL; --algo {args.algo} trains its policy online")
    if args.value_weight is not None:
        raise TrainError(f"--value-weight is for MC and ILQL; --algo {args.algo} has its own value loss")
    if args.eval_episodes < 0:
        raise TrainError("--eval-episodes must not be negative")

    from lmrl.cli_options import json_or_text
    from lmrl.options import role_specs
    from lmrl.tasks import resolve_task

    try:
        roles = role_specs(args.role)
        task = resolve_task(args.task)
    except ValueError as error:
        raise TrainError(str(error).splitlines()[0]) from None
    eval_options = _eval_options(args)
    request: dict[str, Any] = {}
    for item in args.rollout_request:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise TrainError(
                f"--rollout-request {item!r} is not KEY=VALUE (e.g. return_tokens_as_token_ids=true)"
            )
        request[key.strip()] = json_or_text(raw)
    config = OnlineConfig(
        algo=args.algo,
        task=task,
        out=args.out,
        base=args.base,
        rounds=args.rounds,
        episodes_per_round=args.episodes_per_round,
        group_size=args.group_size,
        seed=args.seed,
        lr=args.lr,
        batch_size=args.batch_size,
        packing=args.packing,
        update_epochs=args.update_epochs,
        gamma=args.gamma,
        lam=args.lam,
        discount=args.discount,
        clip=args.clip,
        value_trunk=args.value_trunk,
        kl_coef=args.kl_coef,
        kl_target=args.kl_target,
        credit=args.credit,
        scale=args.scale,
        filter=args.filter,
        bc_data=[str(d) for d in args.bc_data],
        bc_weight=args.bc_weight,
        max_length=args.max_length,
        style=args.style,
        roles=roles,
        task_options=_task_options(args.task_option, "--task-option", task),
        rollout_task_options=_task_options(args.rollout_task_option, "--rollout-task-option", task),
        concurrency=args.concurrency,
        max_turns=args.max_turns,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes if args.eval_every else 0,
        eval_seed=args.eval_seed,
        eval_options=eval_options,
        rollout_server=args.rollout_server,
        rollout_sync=args.rollout_sync,
        rollout_model=args.rollout_model,
        rollout_request=request,
    )
    last = train_online(config, progress=not args.no_progress)
    from accelerate import PartialState

    if not PartialState().is_main_process:  # under accelerate launch, one line, not one per process
        return 0
    print(
        f"wrote {config.out} (play it as local/{config.out}); last round: mean return "
        f"{last.get('mean_return', float('nan')):.3g}, success {last.get('success', 0.0):.0%}"
    )
    return 0
