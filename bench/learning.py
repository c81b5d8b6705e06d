"""Learning results: offline RL from the behaviour datasets, next to the paper's Table 2.

For each task: the paper's dataset policy (``scripted/behavior``) writes the training data (run seed 0);
each algorithm trains from scratch (the tiny GPT-2, tokenizer learnt on the task's text) for every
seed; every checkpoint is evaluated on the same episodes, drawn from a run seed the data never used
(1000; maze: the paper's protocol, 32 episodes from each of the 25 starts, every algorithm through the
paper's re-ranker over the four legal moves). MC and ILQL decode with ``logits + beta * value``; beta
is chosen per run on validation episodes from another run seed (2000), never on the evaluation
episodes. The table gives the
normalized score (the paper's formula and anchors) as the mean over seeds with a 95% t-interval, the
paper's number, and the CPU wall time per run; ``--out`` keeps every dataset, checkpoint and
evaluation run, and ``learning.csv`` / ``learning.md`` beside them.

    python bench/learning.py                                   # the full table (hours on a CPU)
    python bench/learning.py --tasks maze-fo --algos bc,ilql --seeds 0 --max-steps 300   # a quick look
    python bench/learning.py --tasks wordle --base local/smollm2   # from a pretrained base (GPU-sized)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import _common  # noqa: F401
import learning_table as table
from learning_diagnostics import move_accuracy

import lmrl
from lmrl.agents.local_settings import PREFIX_CACHE_ENV, parse_local_options
from lmrl.cli import slug
from lmrl.finetune.evaluation import evaluate, require_complete
from lmrl.finetune.models import SIZES
from lmrl.finetune.online import OnlineConfig, train_online
from lmrl.finetune.trainer import (
    OPTIMIZER_DEFAULTS,
    TASK_DEFAULTS,
    TASK_EVAL_OPTIONS,
    WORD_SETTINGS,
    TrainConfig,
    optimizer_setting_problem,
    train,
)

DATASET_EPISODES = {
    "maze-fo": 1240, "maze-po": 1240, "textnav-fo": 2500, "textnav-po": 2500, "wordle": 2000,
    "endgames": 3000,  # the paper's 97.8k games are days of CPU here
}  # fmt: skip
# The paper's maze data (Table 1): 1.24k trajectories of mean length 19.7, success 0.11; the behaviour
# policy cut at 20 moves gives mean length 18.0 and success 0.19 (uncut: 75 moves, 0.35).
DATASET_MAX_TURNS = {"maze-fo": 20, "maze-po": 20}
# maze: 32 x 25 starts; endgames: each of the 645 evaluation positions once; others: --eval-episodes
EVAL_EPISODES = {"maze-fo": 800, "maze-po": 800, "endgames": 645}
EVAL_SEED = 1000
VALIDATION_SEED = 2000  # beta is tuned here, never on the evaluation seeds
VALIDATION_EPISODES = {"maze-fo": 100, "maze-po": 100}  # 4 x 25 starts; others: --val-episodes
# Task options of every game the bench plays. Endgames: Stockfish searches 20 ms a move instead of
# the paper's 100 ms (the behaviour data then matches the paper's: 56% wins in 12.7 moves on 300
# games, against its 59% and 11.9; a depth-5 search instead won 43% in 22 moves).
TASK_OPTIONS: dict[str, dict] = {"endgames": {"opponent_time": 0.02}}
# ... and of the games training and validation play (data, online rollouts, beta and round picks):
# endgames from random positions, never the evaluation set's.
TRAIN_TASK_OPTIONS: dict[str, dict] = {"endgames": {"positions": "random"}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="maze-fo,maze-po,textnav-fo,wordle")
    parser.add_argument("--algos", default="bc,filtered-bc,mc,ilql")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-steps", type=int, default=2000, help="optimizer steps per run")
    parser.add_argument(
        "--value-steps",
        type=int,
        help="MC/ILQL: optimizer steps (default --max-steps); runs of other lengths are kept apart",
    )
    parser.add_argument(
        "--value-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="MC/ILQL: a training setting over the task's default (tau, cql_weight, value_weight, "
        "polyak, lr, gamma, lr_schedule=cosine|linear, warmup_steps, adam_beta2, heads=mlp; ILQL's "
        "backup=action, MC's truncation=bootstrap); runs with options are kept apart by name",
    )
    parser.add_argument(
        "--bc-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the runs that start from the base (BC, filtered BC; MC/ILQL with --init scratch): an "
        f"optimizer setting over the trainer's ({', '.join(BC_OPTIONS)}, e.g. warmup_steps=500 "
        "adam_beta2=0.95 lr_schedule=cosine); those runs and the MC/ILQL runs that start from them are "
        "kept apart by name",
    )
    parser.add_argument(
        "--eval-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a local agent option for validation and evaluation over the task's (e.g. rerank=true "
        "on Text-Nav: pick among the admissible commands); finished checkpoints are evaluated "
        "again, not retrained, and the results are kept apart by name",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-episodes", type=int, default=200, help="tasks other than maze")
    parser.add_argument("--val-episodes", type=int, default=50, help="beta tuning episodes, not maze")
    parser.add_argument("--betas", default="0,1,4,16,64", help="MC/ILQL: the beta grid tried on validation")
    parser.add_argument(
        "--dataset-scale", type=float, default=1.0, help="fraction of the paper's dataset size"
    )
    parser.add_argument(
        "--base",
        default="tiny",
        help="what BC and the from-scratch runs start from: tiny (the CPU default), small, tiny-rope "
        "(Wordle), small-rope, local/smollm2 or any save_pretrained directory (GPU-sized); runs on "
        "another base than tiny are kept apart by name (bc-small-s0)",
    )
    parser.add_argument(
        "--init",
        choices=("bc", "filtered-bc", "scratch"),
        default="bc",
        help="MC/ILQL start from the same seed's BC checkpoint (the paper's protocol), from its filtered "
        "BC checkpoint (the value and BC terms still train on all the data; kept apart by name: "
        "mc-from-filtered-bc-s0), or from scratch",
    )
    parser.add_argument(
        "--online",
        default="",
        help="online algorithms from the same seed's BC checkpoint: ppo, grpo (per-turn credit), "
        "grpo-episode (episode-level credit), online-filtered-bc; comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=20, help="online: rounds per run")
    parser.add_argument(
        "--pick-round",
        action="store_true",
        help="online: evaluate the round whose checkpoint scores best on the validation episodes "
        "(run seed 2000, as beta), not the last round; kept apart by name",
    )
    parser.add_argument("--episodes-per-round", type=int, default=64, help="online: episodes per round")
    parser.add_argument("--online-max-turns", type=int, default=30, help="online: rollouts cut here")
    parser.add_argument("--online-lr", type=float, default=1e-4, help="online: learning rate")
    parser.add_argument(
        "--online-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"online: a setting over the bench's ({', '.join(ONLINE_OPTIONS)}); runs with options "
        "are kept apart by name",
    )
    parser.add_argument(
        "--eval-seed",
        type=int,
        default=EVAL_SEED,
        help=f"the evaluation episodes' run seed ({EVAL_SEED}); another one evaluates finished checkpoints "
        "again on fresh episodes, with the beta validation picked",
    )
    parser.add_argument("--jobs", type=int, default=2, help="training runs at once, one thread each (2)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/learning"))
    args = parser.parse_args()
    args.value_settings = _number_settings(args.value_option, parser, VALUE_OPTIONS, "--value-option")
    args.online_settings = _number_settings(args.online_option, parser, ONLINE_OPTIONS, "--online-option")
    args.bc_settings = _number_settings(args.bc_option, parser, BC_OPTIONS, "--bc-option")
    for flag, settings in (("--bc-option", args.bc_settings), ("--value-option", args.value_settings)):
        for key, value in settings.items():
            if key in OPTIMIZER_DEFAULTS and (problem := optimizer_setting_problem(key, value)):
                parser.error(f"{flag} {key}={value:g}: {key} {problem}")
    try:
        args.eval_settings = parse_local_options(args.eval_option, "--eval-option")
    except ValueError as error:
        parser.error(str(error))
    args.play_suffix = "".join(
        f"-{key}" if value is True else f"-{key}{value}" for key, value in sorted(args.eval_settings.items())
    ) + ("-pickround" if args.pick_round else "")
    # Another evaluation seed changes only the evaluation: validation (beta, rounds) is played as before.
    args.seed_tag = "" if args.eval_seed == EVAL_SEED else f"-evalseed{args.eval_seed}"
    args.eval_suffix = args.play_suffix + args.seed_tag
    for task in args.tasks.split(","):  # before any work: a run of another length is not this command's
        if problem := _length_problem(task, args):
            parser.error(problem)
    rows = []
    for task in args.tasks.split(","):
        data = args.out / task / "data"
        episodes = max(25, round(DATASET_EPISODES.get(task, 1000) * args.dataset_scale))
        require_complete(lmrl.run(
            task, "scripted/behavior", episodes=episodes, out=data, seed=0, concurrency=64,
            max_turns=DATASET_MAX_TURNS.get(task), task_options={task: _task_options(task, training=True)},
        ))  # fmt: skip
        behaviour = _evaluate_scripted(task, args)
        algos, seeds, online = args.algos.split(","), _seeds(args), _online(args)
        phases = _phases(args)
        results: dict[tuple[str, int], dict] = {}
        _share_prefix_memory(args.jobs)
        for phase in phases:
            jobs = [(task, algo, seed, data, args) for algo in phase for seed in seeds]
            # Several runs at once, one thread each: on a small CPU that beats one run on every core.
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, spawn, _exit_with_parent, (os.getpid(),)) as pool:
                results.update(zip(((a, s) for _, a, s, _, _ in jobs), pool.map(_one_run, jobs), strict=True))
        for algo in algos + online:
            runs = [results[algo, seed] for seed in seeds]
            start = _gain_baseline(algo, args)
            paired = [results[start, seed]["normalized"] for seed in seeds] if start in phases[0] else None
            rows.append(_row(task, algo, runs, behaviour, episodes, args, paired))
        if online:
            table.plot_online(task, table.online_results(args.out / task, ONLINE), args.out)
    table.write(rows, args.out)


def _seeds(args: argparse.Namespace) -> list[int]:
    return [int(s) for s in args.seeds.split(",")]


def _online(args: argparse.Namespace) -> list[str]:
    return [a for a in args.online.split(",") if a]


def _phases(args: argparse.Namespace) -> list[list[str]]:
    """The algorithms of each phase: the paper's protocol starts value-based methods (and the online
    ones) from BC, so BC (or the filtered BC of ``--init filtered-bc``) runs first (phase 0)."""
    algos = args.algos.split(",")
    phases = [
        [a for a in algos if not _from_bc(a, args)],
        [a for a in algos if _from_bc(a, args)] + _online(args),
    ]
    needed = ["bc"] if _online(args) else []
    needed += [args.init] if any(_from_bc(a, args) for a in phases[1]) else []
    for start in reversed(dict.fromkeys(needed)):
        if start not in phases[0]:
            phases[0].insert(0, start)
    return phases


def _start(algo: str, args: argparse.Namespace) -> str | None:
    """The same seed's run ``algo`` starts from: BC or filtered BC (``--init``) for MC/ILQL, BC for the
    online algorithms; None for a run from the base."""
    if _from_bc(algo, args):
        return args.init
    return "bc" if algo in ONLINE else None


def _gain_baseline(algo: str, args: argparse.Namespace) -> str | None:
    """The run a row's paired gain is measured over: the run it starts from, else BC (None for BC)."""
    return _start(algo, args) or (None if algo == "bc" else "bc")


def _length_problem(task: str, args: argparse.Namespace) -> str | None:
    """Why an offline run this command would play or start from is not the length it asks for (None:
    none is). Run names do not carry BC's steps, so a run trained for other steps under the same name
    would be reported as this command's, or resumed to another schedule."""
    for algo in (a for phase in _phases(args) for a in phase if a not in ONLINE):
        for seed in _seeds(args):
            saved = _run_dir(task, algo, seed, args) / "train_config.json"
            if not saved.exists():
                continue
            try:
                steps = json.loads(saved.read_text()).get("max_steps")
            except (json.JSONDecodeError, AttributeError):
                return f"{saved} is not a run's training settings (JSON object): use another --out"
            if steps != _steps(algo, args):
                flag = "--value-steps" if algo in ("mc", "ilql") and args.value_steps else "--max-steps"
                wanted = _steps(algo, args)
                return f"{saved.parent} holds a run of {steps} steps, not {flag} {wanted}: use another --out"
    return None


def _exit_with_parent(parent: int) -> None:
    """A worker's initializer: end the worker once the benchmark that started it is gone (killed, or
    stopped by a signal to its process group). A pool's idle worker otherwise waits for work forever."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(130)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _share_prefix_memory(jobs: int) -> None:
    """Each job's local agents keep prompts' key/value states in a store sized from the free memory
    when they load. ``jobs`` processes loading at once would each take a quarter of the same free
    memory, so they share that quarter (``LMRL_PREFIX_CACHE_MB``, unless it is set already)."""
    from lmrl.agents.batching import default_prefix_budget

    if not os.environ.get(PREFIX_CACHE_ENV):
        os.environ[PREFIX_CACHE_ENV] = str(max(64, default_prefix_budget(None) // 2**20 // jobs))


def _one_run(job: tuple) -> dict:
    """Train one (task, algo, seed), tune beta on validation, evaluate; the result is kept beside the
    checkpoint so that a rerun of the bench skips finished runs."""
    task, algo, seed, data, args = job
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    run = _run_dir(task, algo, seed, args)
    result = _one_online_run(task, algo, seed, args) if algo in ONLINE else _one_offline_run(job)
    return {**_outcome(run, result, args), **result}


def _one_offline_run(job: tuple) -> dict:
    task, algo, seed, data, args = job
    run = _run_dir(task, algo, seed, args)
    done = run / f"bench_result{args.eval_suffix}.json"
    if done.exists():
        return _finished(done, run, task)
    trained = run / "bench_result.json"
    if args.eval_suffix and trained.exists():  # evaluate the finished checkpoint again, other options
        return _evaluate_again(run, task, algo, seed, json.loads(trained.read_text()), args)
    start, bc_seconds = _training_start(task, algo, seed, args)
    started = time.perf_counter() - bc_seconds
    training_started = time.perf_counter()
    final_record = train(
        TrainConfig(
            algo=algo,
            data=[str(data)],
            out=run,
            seed=seed,
            **start,
            max_steps=_steps(algo, args),
            batch_size=args.batch_size,
            eval_episodes=0,
            save_every=max(_steps(algo, args) // 4, 1),
        ),
        progress=args.jobs == 1,
    )
    # The training's seconds over all its sessions (a run resumed mid-training, or after it finished
    # and its evaluation was cut), as the trainer logged them, in place of this session's.
    started += time.perf_counter() - training_started - _training_seconds(run, final_record)
    beta = _tune_beta(run, task, args) if algo in ("mc", "ilql") else None
    final, _ = _evaluate_final(run, task, beta, args, online=False)
    result = {"normalized": final["normalized"], "seconds": time.perf_counter() - started, "beta": beta}
    result["move_accuracy"] = move_accuracy(run, task, beta)
    print(f"{task} {algo} seed {seed}: normalized {result['normalized']:.1f} (beta {beta}) "
          f"in {result['seconds']:.0f} s", flush=True)  # fmt: skip
    done.write_text(json.dumps(result))
    return result


def _training_start(task: str, algo: str, seed: int, args: argparse.Namespace) -> tuple[dict, float]:
    """The TrainConfig settings a run starts from (its base and what the bench's flags set), and the CPU
    seconds of the BC it starts from (0 for a run from the base)."""
    if not _from_bc(algo, args):
        return {"base": args.base, **_value_settings(algo, args), **args.bc_settings}, 0.0
    bc_run, bc_seconds = _bc_start(task, seed, args, args.init)
    start: dict = {"base": str(bc_run)}
    if args.base in SIZES:  # a from-scratch model's learning rate, not a pretrained checkpoint's
        start["lr"] = TASK_DEFAULTS.get(task, {}).get("lr", 3e-4)
    return {**start, **_value_settings(algo, args)}, bc_seconds


def _training_seconds(run: Path, final_record: dict) -> float:
    """Seconds the training of ``run`` took in all: the trainer's ``train_seconds``; for runs trained
    before the trainer logged them, what the bench recorded (``bench_trained.json``), else 0."""
    if "train_seconds" in final_record:
        return float(final_record["train_seconds"])
    recorded = run / "bench_trained.json"
    return json.loads(recorded.read_text())["seconds"] if recorded.exists() else 0.0


ONLINE = {"ppo", "grpo", "grpo-episode", "online-filtered-bc"}
START_LABELS = {"bc": "BC", "filtered-bc": "filtered BC"}  # what a row's label calls the run it starts from


def _one_online_run(task: str, algo: str, seed: int, args: argparse.Namespace) -> dict:
    """Online RL from the same seed's BC checkpoint, then the same evaluation as every offline row. The
    curve is each round's rollout mean return (on-policy, rollouts cut at ``--online-max-turns``)."""
    run = _run_dir(task, algo, seed, args)
    done = run / f"bench_result{args.eval_suffix}.json"
    if done.exists():
        return _finished(done, run, task)
    trained = run / "bench_result.json"
    if args.eval_suffix and trained.exists():
        return _evaluate_again(run, task, algo, seed, json.loads(trained.read_text()), args)
    bc_run, bc_seconds = _bc_start(task, seed, args)
    started = time.perf_counter() - bc_seconds
    train_online(
        OnlineConfig(
            algo="grpo" if algo.startswith("grpo") else algo,
            credit="episode" if algo == "grpo-episode" else "turn",
            task=task, out=run, base=str(bc_run), seed=seed, rounds=args.rounds,
            episodes_per_round=args.episodes_per_round, max_turns=args.online_max_turns, lr=args.online_lr,
            task_options=TASK_OPTIONS.get(task, {}), rollout_task_options=TRAIN_TASK_OPTIONS.get(task, {}),
            **{"update_epochs": 2, "batch_size": 64, **args.online_settings},
        ),
        progress=False,
    )  # fmt: skip
    final, picked = _evaluate_final(run, task, None, args, online=True)
    result = {
        "round": picked,
        "normalized": final["normalized"],
        "seconds": time.perf_counter() - started,
        "beta": None,
        "move_accuracy": move_accuracy(run, task, None),
        "curve": _round_log(run, "mean_return"),
        "success_curve": _round_log(run, "success"),
        "episodes_per_round": args.episodes_per_round,
    }
    print(
        f"{task} {algo} seed {seed}: normalized {result['normalized']:.1f} in {result['seconds']:.0f} s",
        flush=True,
    )
    done.write_text(json.dumps(result))
    return result


def _bc_start(task: str, seed: int, args: argparse.Namespace, start: str = "bc") -> tuple[Path, float]:
    """The same seed's BC (or filtered BC) checkpoint, and its CPU seconds: a run's time includes the
    checkpoint it starts from."""
    run = _run_dir(task, start, seed, args)
    return run, json.loads((run / "bench_result.json").read_text())["seconds"]


def _run_dir(task: str, algo: str, seed: int, args: argparse.Namespace) -> Path:
    if algo in ONLINE:
        options = "".join(f"-{key}{value:g}" for key, value in sorted(args.online_settings.items()))
        return args.out / task / f"{algo}{options}{_base_tag(args)}-from-bc{_bc_tag(args)}-s{seed}"
    return args.out / task / _run_name(algo, seed, args)


def _outcome(run: Path, result: dict, args: argparse.Namespace) -> dict:
    """Mean return, success and the share of invalid replies of the run's evaluation episodes (the
    picked round's where validation picked one): what the normalized score hides on a task like
    endgames, where each illegal move costs -1 (the paper's App. E table)."""
    if result.get("round") is not None:
        run = run / "rounds" / f"round-{result['round']:03d}" / "checkpoint"
    episodes = lmrl.load_run(run / f"eval{args.eval_suffix}")
    turns = [t for e in episodes for t in e.turns]
    return {
        "mean_return": statistics.fmean(e.return_ for e in episodes),
        "success": statistics.fmean(bool(e.success) for e in episodes),
        "invalid": sum(t.invalid for t in turns) / max(1, len(turns)),
    }


def _round_log(run: Path, key: str) -> list[float]:
    """Every round's ``key`` from an online run's log (a resumed run's process saw only the rounds
    after it)."""
    return [json.loads(line)[key] for line in (run / "train_log.jsonl").read_text().splitlines()]


def _finished(done: Path, run: Path, task: str) -> dict:
    """A finished run's result, with the move accuracy (and an online run's success curve) added
    where it is new."""
    result = json.loads(done.read_text())
    before = dict(result)
    if result.get("move_accuracy") is None:
        accuracy = move_accuracy(run, task, result["beta"])  # None for tasks without decision states
        if accuracy is not None:
            result["move_accuracy"] = accuracy
    if "curve" in result and "success_curve" not in result:
        result["success_curve"] = _round_log(run, "success")
    if result != before:
        done.write_text(json.dumps(result))
    return result


def _evaluate_again(run: Path, task: str, algo: str, seed: int, trained: dict, args) -> dict:
    """A finished checkpoint under ``--eval-option``: beta tuned again on validation (MC, ILQL) and
    the same evaluation episodes, played with the options. Its CPU time is the training run's (that
    run's evaluation included) plus this one's."""
    started = time.perf_counter() - trained["seconds"]
    beta = _tune_beta(run, task, args) if algo in ("mc", "ilql") else None
    final, picked = _evaluate_final(run, task, beta, args, online=algo in ONLINE)
    result = {**trained, "normalized": final["normalized"], "beta": beta, "round": picked}
    config = json.loads((run / "train_config.json").read_text())
    if config.get("max_steps"):  # the row names the steps the checkpoint was trained for
        result["max_steps"] = config["max_steps"]
    result["seconds"] = time.perf_counter() - started
    print(f"{task} {algo} seed {seed} ({args.eval_suffix[1:]}): normalized {result['normalized']:.1f} "
          f"(beta {beta})", flush=True)  # fmt: skip
    (run / f"bench_result{args.eval_suffix}.json").write_text(json.dumps(result))
    return result


def _evaluate_final(run: Path, task: str, beta: float | None, args, online: bool) -> tuple[dict, int | None]:
    """The evaluation episodes played by ``run``, or by the round validation picks (``--pick-round``,
    online runs); and that round."""
    where, picked = _pick_round(run, task, args) if args.pick_round and online else (run, None)
    return _play(
        where, task, EVAL_EPISODES.get(task, args.eval_episodes), args.eval_seed, beta, "eval", args
    ), picked


def _pick_round(run: Path, task: str, args: argparse.Namespace) -> tuple[Path, int]:
    """The round checkpoint with the best mean normalized score on the validation episodes (the
    first such round on a tie), and its round number."""
    episodes = VALIDATION_EPISODES.get(task, args.val_episodes)
    scores = {
        int(checkpoint.parent.name.removeprefix("round-")): _play(
            checkpoint, task, episodes, VALIDATION_SEED, None, "validation", args
        )["normalized"]
        for checkpoint in sorted((run / "rounds").glob("round-*/checkpoint"))
    }
    print("  validation: " + ", ".join(f"round {r}: {v:.1f}" for r, v in scores.items()), flush=True)
    best = max(scores, key=scores.__getitem__)
    return run / "rounds" / f"round-{best:03d}" / "checkpoint", best


VALUE_OPTIONS = (
    "tau",
    "cql_weight",
    "value_weight",
    "polyak",
    "lr",
    "gamma",
    *WORD_SETTINGS,
    *OPTIMIZER_DEFAULTS,
)
ONLINE_OPTIONS = ("kl_coef", "kl_target", "group_size", "update_epochs", "clip")
BC_OPTIONS = (*OPTIMIZER_DEFAULTS, "lr_schedule")
# Whole-number settings: a float here would fail the trainer's type check.
WHOLE_SETTINGS = ("group_size", "update_epochs", "warmup_steps")
# How the optimizer settings read in run names (bc-warmup500-beta2_0.95-s0; a value run's lr_schedule
# keeps its older spelling, lr_schedulecosine).
OPTIMIZER_TAGS = {"warmup_steps": "warmup", "adam_beta2": "beta2_"}
BC_TAGS = {**OPTIMIZER_TAGS, "lr_schedule": ""}


def _number_settings(
    pairs: list[str], parser: argparse.ArgumentParser, keys: tuple[str, ...], flag: str
) -> dict[str, float]:
    """``KEY=NUMBER`` pairs of ``flag`` (whole numbers as ints; ``WORD_SETTINGS`` take one of their
    words), keys from ``keys``."""
    settings: dict[str, float | str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in keys:
            parser.error(f"{flag} {pair}: the key is one of {', '.join(keys)}")
        if key in WORD_SETTINGS:
            if value not in WORD_SETTINGS[key]:
                parser.error(f"{flag} {pair}: the value is one of {', '.join(WORD_SETTINGS[key])}")
            settings[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            parser.error(f"{flag} {pair}: the value is a number")
        settings[key] = int(number) if number.is_integer() and key in WHOLE_SETTINGS else number
    return settings


def _value_settings(algo: str, args: argparse.Namespace) -> dict[str, float | str]:
    """The --value-option settings that apply to ``algo`` (``backup`` is ILQL's alone, ``truncation``
    MC's)."""
    if algo not in ("mc", "ilql"):
        return {}
    only = {"backup": "ilql", "truncation": "mc"}
    return {k: v for k, v in args.value_settings.items() if only.get(k, algo) == algo}


def _setting(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def _from_bc(algo: str, args: argparse.Namespace) -> bool:
    """Whether ``algo`` starts from a BC checkpoint (``--init bc`` or ``filtered-bc``), not the base."""
    return args.init != "scratch" and algo in ("mc", "ilql")


def _steps(algo: str, args: argparse.Namespace) -> int:
    return args.value_steps or args.max_steps if algo in ("mc", "ilql") else args.max_steps


def _base_tag(args: argparse.Namespace) -> str:
    """The base in run names: nothing for tiny (the runs before ``--base`` keep their names)."""
    if args.base == "tiny":
        return ""
    return "-" + slug(Path(args.base.removeprefix("local/")).name)


def _bc_tag(args: argparse.Namespace) -> str:
    """The --bc-option settings in run names: nothing without them (older runs keep their names)."""
    return "".join(f"-{BC_TAGS[key]}{_setting(value)}" for key, value in sorted(args.bc_settings.items()))


def _run_name(algo: str, seed: int, args: argparse.Namespace) -> str:
    # A run from BC names the BC it starts from; a run from the base names its own optimizer settings.
    name = f"{algo}{_base_tag(args)}" + (f"-from-{args.init}" if _from_bc(algo, args) else "") + _bc_tag(args)
    if algo in ("mc", "ilql") and _steps(algo, args) != args.max_steps:
        name += f"-{_steps(algo, args)}steps"  # the --max-steps runs stay as they are
    name += "".join(
        f"-{OPTIMIZER_TAGS.get(key, key)}{_setting(value)}"
        for key, value in sorted(_value_settings(algo, args).items())
    )
    return f"{name}-s{seed}"


def _play(checkpoint: Path, task: str, episodes: int, seed: int, beta: float | None, name: str, args) -> dict:
    """Play ``episodes`` into ``checkpoint/<name><eval suffix>`` with the task's evaluation options
    and ``--eval-option`` over them."""
    options = {**TASK_EVAL_OPTIONS.get(task, {}), **args.eval_settings}
    if beta is not None:
        options["beta"] = beta
    directory, _, leaf = name.partition("/")
    where = checkpoint / (directory + (args.eval_suffix if name == "eval" else args.play_suffix)) / leaf
    task_options = _task_options(task, training=name != "eval")
    return evaluate(checkpoint, task, episodes, seed, where, "text", options, task_options)


def _task_options(task: str, training: bool) -> dict:
    """The task options of the bench's games: evaluation, or training and validation."""
    return {**TASK_OPTIONS.get(task, {}), **(TRAIN_TASK_OPTIONS.get(task, {}) if training else {})}


def _tune_beta(checkpoint: Path, task: str, args: argparse.Namespace) -> float:
    """The beta of the grid with the best mean normalized score on the validation episodes."""
    episodes = VALIDATION_EPISODES.get(task, args.val_episodes)
    scores = {
        beta: _play(checkpoint, task, episodes, VALIDATION_SEED, beta, f"validation/beta-{beta:g}", args)[
            "normalized"
        ]
        for beta in (float(b) for b in args.betas.split(","))
    }
    print("  validation: " + ", ".join(f"beta {b:g}: {v:.1f}" for b, v in scores.items()), flush=True)
    return max(scores, key=scores.__getitem__)


def _evaluate_scripted(task: str, args: argparse.Namespace) -> float:
    """The behaviour policy itself on the evaluation episodes (the dataset average anchor's policy)."""
    out = args.out / task / f"behavior-eval{args.seed_tag}"
    require_complete(
        lmrl.run(
            task, "scripted/behavior", episodes=EVAL_EPISODES.get(task, args.eval_episodes), out=out,
            seed=args.eval_seed, task_options={task: _task_options(task, training=False)},
        )
    )  # fmt: skip
    from lmrl.reports import episodes_frame, summarize
    from lmrl.rundir import read_manifest

    anchors = {name: t["anchors"] for name, t in read_manifest(out)["tasks"].items()}
    return float(summarize(episodes_frame(lmrl.load_run(out)), anchors).iloc[0]["normalized"])


def _row(task, algo, runs, behaviour, episodes, args, bc: list[float] | None) -> dict:
    scores = [r["normalized"] for r in runs]
    accuracies = [r.get("move_accuracy") for r in runs]
    return {
        "task": task,
        "algo": (f"{algo} (from {START_LABELS[start]})" if (start := _start(algo, args)) else algo)
        + ("" if args.base == "tiny" else f", base {args.base}")
        + "".join(
            f", {START_LABELS[args.init] + ' ' if _from_bc(algo, args) else ''}{k} {_setting(v)}"
            for k, v in sorted(args.bc_settings.items())
        )
        + "".join(f", {k} {_setting(v)}" for k, v in sorted(_value_settings(algo, args).items()))
        + "".join(f", {k} {v:g}" for k, v in sorted(args.online_settings.items()) if algo in ONLINE)
        + "".join(f", {k}={v}" for k, v in sorted(args.eval_settings.items()))
        + (f", evaluated on run seed {args.eval_seed}" if args.seed_tag else ""),
        "seeds": len(scores),
        "move_accuracy": "-" if None in accuracies else " ".join(f"{a:.2f}" for a in accuracies),
        "normalized": round(statistics.fmean(scores), 1),
        "ci95": round(table.ci95(scores), 1),
        "mean_return": round(statistics.fmean(r["mean_return"] for r in runs), 3),
        "success": round(statistics.fmean(r["success"] for r in runs), 3),
        "invalid": round(statistics.fmean(r["invalid"] for r in runs), 3),
        "per_seed": " ".join(f"{s:.1f}" for s in scores),
        "over_bc": table.gain_over(scores, bc),
        "beta": " ".join(table.picked(r) for r in runs),
        "episodes_to_90": table.reach(runs),
        "paper": table.paper(task, algo),
        "behaviour_policy": round(behaviour, 1),
        "dataset_episodes": episodes,
        "max_steps": runs[0].get("max_steps", _steps(algo, args)),
        "cpu_minutes_per_run": round(statistics.fmean(r["seconds"] for r in runs) / 60, 1),
    }


if __name__ == "__main__":
    main()
