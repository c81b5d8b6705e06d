"""The one loop every online algorithm runs on (``lmrl train --algo ppo|online-filtered-bc|grpo``).

Each round:

1. **rollouts**: the harness plays ``episodes_per_round`` episodes of the task with the current policy
   as a ``local/`` agent (batched across episodes, temperature 1, partners filled as in evaluation)
   into an ordinary run directory, ``rounds/round-R/run``. The agent plays the very module being
   trained (``share_model``: weights updated in place, never reloaded from disk); its spec names the
   checkpoint holding those weights (``rounds/round-(R-1)/checkpoint``, the base for round 0). GRPO
   plays ``group_size`` episodes from each start (``RunConfig.same_starts``).
2. **samples**: every turn of every finished episode becomes a ``Sample`` built from the token ids the
   policy sampled and their log-probabilities, as logged (never re-tokenized text).
3. **update**: the algorithm turns the round's samples into training items (``prepare``: advantages,
   filters) and the loop takes ``update_epochs`` passes of minibatch steps over them (``loss``).
4. **save**: ``rounds/round-R/checkpoint`` (playable as ``local/``), one ``train_log.jsonl`` record,
   and the resumable state; a killed run resumes from the last finished round (the half-played round's
   finished episodes are kept by the runner's own resume).

An algorithm is a module with ``NAME``, ``DEFAULTS``, ``prepare(ctx, episodes, samples) -> (items,
stats)`` and ``loss(ctx, items) -> (loss, metrics)``; ``ctx`` (``Context``) holds the policy, the value
head and the frozen reference policy when the algorithm asks for them.
"""

from __future__ import annotations

import importlib
import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lmrl.finetune.data import DatasetError, Sample, top_fraction_of
from lmrl.finetune.trainer import (
    TASK_DEFAULTS,
    TASK_EVAL_OPTIONS,
    StepProgress,
    TrainError,
    jsonable,
    rank_share,
    read_state,
    task_filter,
    weighted_step,
)

ONLINE_ALGORITHMS = {"ppo": "ppo", "online-filtered-bc": "online_filtered_bc", "grpo": "grpo"}
ROUND_SEED = 1_000_000  # rollout run seeds start here: far from the evaluation (1000) and validation seeds


@dataclass
class OnlineConfig:
    algo: str
    task: str
    out: Path
    base: str = "tiny"
    rounds: int = 10
    episodes_per_round: int = 64
    group_size: int = 8  # grpo: episodes per start
    seed: int = 0
    lr: float | None = None  # default: 3e-4 for models under 20M parameters (ours), else 1e-5
    batch_size: int = 32  # turns per optimizer step
    packing: str = "auto"  # auto: one sequence per episode where renderings only grow; off: per turn
    update_epochs: int | None = None  # passes over a round's items (algorithm default)
    gamma: float | None = None
    lam: float = 0.95
    discount: str = "per_turn"
    clip: float = 0.2
    value_clip: float = 0.2
    value_coef: float = 0.5
    value_trunk: bool = False  # ppo: the value loss trains the shared trunk too
    kl_coef: float | None = None  # algorithm default
    kl_target: float | None = None  # adaptive KL (Ziegler) when set
    kl_horizon: float = 10_000
    credit: str = "turn"  # grpo: turn (per-turn returns against the group) or episode
    scale: bool = False  # grpo: divide advantages by the group's return std
    filter: str | None = None  # online filtered BC: success or top:FRACTION (None: the task's)
    bc_data: list[str] = field(default_factory=list)  # ppo: a fixed dataset for an extra BC loss
    bc_weight: float = 0.0
    max_length: int | None = None
    style: str = "text"
    roles: dict[str, str] = field(default_factory=dict)
    # the task's options in rollouts and evaluations (e.g. a faster engine), and in rollouts only over
    # them (e.g. endgames' random training positions instead of the evaluation set)
    task_options: dict[str, Any] = field(default_factory=dict)
    rollout_task_options: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 64
    max_turns: int | None = None
    eval_every: int | None = None  # rounds
    eval_episodes: int = 0
    eval_seed: int = 1000
    eval_options: dict[str, Any] = field(default_factory=dict)
    # rollouts on an OpenAI-compatible server instead of in-process (``rollout_server.py``)
    rollout_server: str | None = None
    rollout_sync: str = "path"
    rollout_model: str | None = None
    rollout_request: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        record = asdict(self)
        for name in (
            "out",
            "rounds",
            "eval_every",
            "eval_episodes",
            "eval_options",
            "settings",
            "concurrency",
            "rollout_server",  # the same run may resume against another address
            "packing",  # the layout of the update's batches, not what it computes
        ):
            record.pop(name)
        for name in ("task_options", "rollout_task_options"):
            if not record[name]:  # runs from before task options resume as they are
                record.pop(name)
        return record

    def rollout_options(self) -> dict[str, Any]:
        return {**self.task_options, **self.rollout_task_options}


@dataclass
class Context:
    """What an algorithm's ``prepare`` and ``loss`` work with. ``model``/``value_head`` are what the loss
    runs through (DDP-wrapped under ``accelerate launch``); ``policy``/``value_module`` the plain
    modules ``prepare`` scores with (the same objects in one process)."""

    model: Any
    tokenizer: Any
    settings: dict[str, Any]
    device: Any
    value_head: Any = None  # ppo: V(s) from the policy's hidden states
    reference: Any = None  # the frozen starting policy (KL)
    bc_samples: list[Sample] = field(default_factory=list)
    kl_coef: float = 0.0
    packing: bool = False  # score and update whole episodes as one sequence where they pack
    rng: random.Random = field(default_factory=random.Random)
    unwrap: Callable[[Any], Any] = field(default=lambda module: module)

    @property
    def policy(self) -> Any:
        return self.unwrap(self.model)

    @property
    def value_module(self) -> Any:
        return None if self.value_head is None else self.unwrap(self.value_head)


def online_algorithm(name: str) -> Any:
    if name not in ONLINE_ALGORITHMS:
        raise TrainError(f"unknown online algorithm {name!r}; known: {', '.join(ONLINE_ALGORITHMS)}")
    return importlib.import_module(f"lmrl.finetune.{ONLINE_ALGORITHMS[name]}")


def train_online(
    config: OnlineConfig, progress: bool = True, on_log: Callable[[dict], None] | None = None
) -> dict:
    """Run the rounds; resume from ``out/state`` when it holds this run's state. Returns the last
    round's log record."""
    import torch
    from accelerate import Accelerator

    from lmrl.agents.local_models import release_model, share_model
    from lmrl.finetune import models
    from lmrl.finetune.advantages import KLController
    from lmrl.tasks import resolve_task

    algo = online_algorithm(config.algo)
    try:
        config.task = resolve_task(config.task)
    except Exception as error:
        raise TrainError(str(error).splitlines()[0]) from None
    # the paper's filter for the task; the other algorithms keep the old default (their resumed states)
    config.filter = config.filter or (
        task_filter(config.task) if config.algo == "online-filtered-bc" else "success"
    )
    _check(config)
    server = _rollout_server(config)
    out = config.out
    state_dir = out / "state"
    state = read_state(state_dir, config)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    main = accelerator.is_main_process
    try:
        with accelerator.main_process_first():  # one process builds a from-scratch base, the rest read it
            base_dir = models.prepare_base(config.base, config.task, out / "base", config.seed).resolve()
        model, tokenizer = models.load(state_dir / "model" if state else base_dir)
    except models.ModelError as error:
        raise TrainError(str(error)) from None
    model.to(device)
    settings = config.settings = _resolve(config, algo, model)
    bc_samples = _bc_samples(config, tokenizer, settings) if config.bc_weight else []
    torch.manual_seed(config.seed)
    ctx = Context(model, tokenizer, settings, device, bc_samples=bc_samples, rng=random.Random(config.seed))
    ctx.packing = config.packing == "auto"
    ctx.unwrap = accelerator.unwrap_model
    if getattr(algo, "VALUE_HEAD", False):
        ctx.value_head = torch.nn.Linear(model.config.hidden_size, 1).to(device)
        torch.nn.init.zeros_(ctx.value_head.weight)  # zero-initialized, as the paper's PPO
        torch.nn.init.zeros_(ctx.value_head.bias)
        if state:
            ctx.value_head.load_state_dict(torch.load(state_dir / "value_head.pt", weights_only=True))
    if settings["kl_coef"] or settings.get("kl_target"):
        ctx.reference = models.load(base_dir)[0].to(device).eval().requires_grad_(False)
    parameters = list(model.parameters()) + (list(ctx.value_head.parameters()) if ctx.value_head else [])
    optimizer = torch.optim.AdamW(parameters, lr=settings["lr"])
    ctx.model, optimizer = accelerator.prepare(model, optimizer)
    if ctx.value_head is not None:
        ctx.value_head = accelerator.prepare(ctx.value_head)
    if state:
        optimizer.load_state_dict(torch.load(state_dir / "optimizer.pt", weights_only=True))
    kl = KLController(settings["kl_coef"], settings.get("kl_target"), config.kl_horizon)
    if state:
        kl.coef = state["kl_coef"]
    first = state["round"] + 1 if state else 0
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(jsonable(config), indent=2) + "\n")
    bar = StepProgress(config.rounds, first, enabled=progress and main, label="rounds")
    record: dict[str, Any] = {}
    try:
        for round_index in range(first, config.rounds):
            playing = base_dir if round_index == 0 else _checkpoint(out, round_index - 1)
            started = time.perf_counter()
            if main and server is not None:  # the server plays the weights the last round saved
                _rollouts(config, round_index, *server.agent(server.prepare(playing)))
            elif main:  # one process plays the round; every process then trains on all of it
                model.eval()
                where = "cpu" if device.type == "cpu" else str(device)  # ranks on a CPU say cpu:0
                loaded = share_model(playing.resolve(), model, tokenizer, where, "float32")
                try:
                    _rollouts(config, round_index, f"local/{playing.resolve()}", _policy_options(where))
                finally:
                    release_model(loaded)
            accelerator.wait_for_everyone()
            episodes = _round_episodes(config, round_index)
            rollout_s = time.perf_counter() - started
            record = _update(config, algo, ctx, kl, optimizer, episodes, round_index, rollout_s, accelerator)
            where = _checkpoint(out, round_index)
            if main:
                models.save(ctx.policy, tokenizer, where)
                if config.eval_every and (round_index + 1) % config.eval_every == 0:
                    record["eval"] = _evaluate(config, where, round_index)
                with (out / "train_log.jsonl").open("a") as log:
                    log.write(json.dumps(record) + "\n")
                if on_log:
                    on_log(record)
                _save_state(state_dir, ctx.policy, tokenizer, ctx, optimizer, kl, round_index, config)
            accelerator.wait_for_everyone()
            bar.update(round_index + 1, _figures(record))
    finally:
        bar.close()
    if main:
        models.save(
            ctx.policy, tokenizer, out
        )  # the result: the last round's weights, playable as local/<out>
        shutil.rmtree(state_dir, ignore_errors=True)
        _plot(out)
    accelerator.wait_for_everyone()
    return record


def _check(config: OnlineConfig) -> None:
    problems = [
        (config.rounds >= 1, f"--rounds must be at least 1 (got {config.rounds})"),
        (config.episodes_per_round >= 1, "--episodes-per-round must be at least 1"),
        (config.algo != "grpo" or config.group_size >= 2, "--group-size must be at least 2 for grpo"),
        (
            config.algo != "grpo" or config.episodes_per_round % config.group_size == 0,
            f"--episodes-per-round ({config.episodes_per_round}) must be a multiple of --group-size "
            f"({config.group_size})",
        ),
        (config.credit in ("turn", "episode"), f"--credit must be turn or episode, not {config.credit!r}"),
        (config.packing in ("auto", "off"), f"--packing must be auto or off, not {config.packing!r}"),
        (not config.bc_weight or bool(config.bc_data), "--bc-weight needs --bc-data RUN_DIR"),
    ]
    for ok, message in problems:
        if not ok:
            raise TrainError(message)
    try:
        top_fraction_of(config.filter)
    except DatasetError as error:
        raise TrainError(str(error)) from None
    for run_dir in config.bc_data:
        if not (Path(run_dir) / "manifest.json").exists():
            raise TrainError(f"--bc-data {run_dir} is not an lmrl run directory")
    check_task_options(config.task, config.task_options, config.rollout_options())


def check_task_options(task: str, *options: dict[str, Any]) -> None:
    """``TrainError`` (one line) unless ``task`` takes each set of options, before anything is written."""
    from lmrl.task import InvalidTaskOption
    from lmrl.tasks import make_task

    for settings in options:
        try:
            make_task(task, **settings)
        except InvalidTaskOption as error:
            raise TrainError(str(error)) from None


def _resolve(config: OnlineConfig, algo: Any, model: Any) -> dict[str, Any]:
    task = TASK_DEFAULTS.get(config.task, {})
    parameters = sum(p.numel() for p in model.parameters())
    settings: dict[str, Any] = {
        "gamma": task.get("gamma", 0.99),
        "max_length": task.get("max_length", 1024),
        "lr": 3e-4 if parameters < 20e6 else 1e-5,
        **algo.DEFAULTS,
    }
    for name in ("gamma", "max_length", "lr", "kl_coef", "update_epochs"):
        if getattr(config, name) is not None:
            settings[name] = getattr(config, name)
    for name in (
        "lam",
        "clip",
        "value_clip",
        "value_coef",
        "value_trunk",
        "kl_target",
        "credit",
        "scale",
        "filter",
    ):
        settings[name] = getattr(config, name)
    settings["bc_weight"] = config.bc_weight
    settings["discount"] = config.discount
    return settings


def _round_dir(config: OnlineConfig, round_index: int) -> Path:
    return config.out / "rounds" / f"round-{round_index:03d}" / "run"


def _round_episodes(config: OnlineConfig, round_index: int) -> list[Any]:
    """The finished episodes of a round's run directory. A round with none (every episode failed: a
    rollout server that cannot load the checkpoint, a partner that is down) stops the run in one line
    rather than training on nothing."""
    from lmrl.rundir import load_episodes

    played = load_episodes(_round_dir(config, round_index))
    finished = [e for e in played if e.error is None and e.turns]
    if not finished:
        first = next((str(e.error).splitlines()[0] for e in played if e.error), "none was played")
        raise TrainError(
            f"round {round_index}: no episode finished ({len(played)} failed; the first: {first}); "
            f"see {_round_dir(config, round_index)}"
        )
    return finished


def _rollout_server(config: OnlineConfig) -> Any:
    """The rollout server of ``--rollout-server``, checked (settings, reachable), or None."""
    from lmrl.finetune.rollout_server import RolloutServer

    if config.rollout_server is None:
        if config.rollout_model or config.rollout_request or config.rollout_sync != "path":
            raise TrainError(
                "--rollout-sync, --rollout-model and --rollout-request need --rollout-server URL"
            )
        return None
    server = RolloutServer(
        config.rollout_server, config.rollout_sync, config.rollout_model, config.rollout_request
    )
    server.check()
    return server


def _policy_options(device: str) -> Any:
    """The in-process policy: temperature 1, no value guidance (heads a base may carry), fp32 weights."""
    from lmrl.agents import AgentOptions

    return AgentOptions(temperature=1.0, extra={"device": device, "dtype": "float32", "beta": 0.0})


def _rollouts(config: OnlineConfig, round_index: int, spec: str, options: Any) -> None:
    """Play one round with the policy (``spec``) into its run directory (a killed round resumes)."""
    from lmrl.finetune.evaluation import play_all
    from lmrl.runner import RunConfig

    grouped = config.algo == "grpo"
    run_dir = _round_dir(config, round_index)
    run = RunConfig(
        out=run_dir,
        tasks=[config.task],
        models=[spec],
        episodes=config.episodes_per_round // config.group_size if grouped else config.episodes_per_round,
        epochs=config.group_size if grouped else 1,
        same_starts=grouped,
        concurrency=config.concurrency,
        seed=ROUND_SEED + 1000 * config.seed + round_index,
        style=config.style,
        roles=dict(config.roles),
        max_turns=config.max_turns,
        agent_options=options,
        task_options={config.task: config.rollout_options()},
    )
    play_all(run)


def round_samples(
    ctx: Context, episodes: Sequence[Any], task: str, task_options: dict[str, Any] | None = None
) -> list[list[Sample]]:
    """Each episode's turns as samples from the logged token ids and log-probabilities."""
    from lmrl.finetune.data import episode_samples
    from lmrl.tasks import make_task

    made = make_task(task, **(task_options or {}))
    return [
        episode_samples(
            made,
            episode,
            ctx.tokenizer,
            max_length=ctx.settings["max_length"],
            gamma=ctx.settings["gamma"],
            discount=ctx.settings.get("discount", "per_turn"),
        )
        for episode in episodes
    ]


def _update(config, algo, ctx, kl, optimizer, episodes, round_index, rollout_s, accelerator) -> dict:
    """``update_epochs`` passes of minibatch steps over the round's items, each step the offline loop's
    (``rank_share`` + ``weighted_step``: under ``accelerate launch`` DDP's averaged gradient is the
    whole minibatch's)."""
    import torch

    started = time.perf_counter()
    ctx.kl_coef = kl.coef
    samples = round_samples(ctx, episodes, config.task, config.rollout_options())
    items, stats = algo.prepare(ctx, episodes, samples)
    units, per_batch, action_tokens, sequence_tokens = _update_units(items, ctx.packing, config.batch_size)
    ctx.model.train()
    steps, tokens, window = 0, 0, []
    for epoch in range(ctx.settings.get("update_epochs", 1)):
        order = list(range(len(units)))
        random.Random(f"{config.seed}/{round_index}/{epoch}").shuffle(order)
        for start in range(0, len(order), per_batch):
            batch = [units[i] for i in order[start : start + per_batch]]
            mine, weight = rank_share(batch, accelerator, action_tokens)
            torch.manual_seed(config.seed * 1_000_003 + round_index * 1009 + steps)
            loss, metrics = algo.loss(ctx, mine)
            loss = weighted_step(accelerator, optimizer, loss, weight, clip_norm=1.0)
            steps += 1
            tokens += sum(map(sequence_tokens, batch))
            window.append({"loss": loss, **metrics})
    ctx.model.eval()
    update_s = time.perf_counter() - started
    if "kl" in stats:
        kl.update(stats["kl"], len(episodes))
    returns = [e.return_ for e in episodes]
    turns = [s for episode in samples for s in episode]
    means = {k: sum(w[k] for w in window if k in w) / max(1, sum(k in w for w in window)) for k in
             sorted({k for w in window for k in w})}  # fmt: skip
    return {
        "round": round_index,
        "episodes": len(episodes),
        "mean_return": sum(returns) / max(1, len(returns)),
        "success": sum(bool(e.success) for e in episodes) / max(1, len(episodes)),
        # the share of the round's replies the task refused: what a policy drifting off the action
        # format shows first, before its return falls
        "invalid": sum(t.invalid for e in episodes for t in e.turns)
        / max(1, sum(len(e.turns) for e in episodes)),
        **stats,
        **means,
        "kl_coef": ctx.kl_coef,
        "items": len(items),
        "packed": units is not items,  # the update ran one sequence per episode
        # turns whose token ids and log-probabilities came from the sampler (the rest were tokenized
        # from the parsed action and scored by the policy: a rollout server that gives no ids)
        "sampled_ids": sum(s.logprobs is not None for s in turns) / max(1, len(turns)),
        "steps": steps,
        "rollout_s": rollout_s,
        "update_s": update_s,
        "episodes_per_s": len(episodes) / max(rollout_s, 1e-9),
        "tokens_per_s": tokens / max(update_s, 1e-9),
        "time": time.time(),
    }


def _update_units(
    items: list[Any], packing: bool, batch_size: int
) -> tuple[list[Any], int, Callable, Callable]:
    """What a minibatch is made of: with ``packing``, whole episodes where they pack and single turns
    of those that do not (``pack_items``; a minibatch then takes as many units as hold about
    ``batch_size`` turns), else single turns. Returns (units, units per minibatch, a unit's action
    tokens, the tokens its forward reads)."""
    from lmrl.finetune.policy import pack_items

    units = pack_items(items) if packing else None
    if not units:
        return (
            items,
            batch_size,
            lambda i: len(i.sample.action_ids),
            lambda i: len(i.sample.prompt_ids) + len(i.sample.action_ids),
        )
    per_batch = max(1, round(batch_size * len(units) / len(items)))
    return units, per_batch, lambda u: u.packed.action_tokens, lambda u: len(u.packed.ids)


def _evaluate(config: OnlineConfig, checkpoint: Path, round_index: int) -> dict:
    from lmrl.finetune.evaluation import evaluate

    options = {**TASK_EVAL_OPTIONS.get(config.task, {}), **config.eval_options}
    run_dir = config.out / "rounds" / f"round-{round_index:03d}" / "eval"
    return evaluate(
        checkpoint, config.task, config.eval_episodes, config.eval_seed, run_dir, config.style, options,
        config.task_options,
    )  # fmt: skip


def _bc_samples(config: OnlineConfig, tokenizer: Any, settings: dict[str, Any]) -> list[Sample]:
    from lmrl.finetune.data import DatasetError, dataset_samples, load_dataset

    try:
        episodes = load_dataset(config.bc_data)
    except DatasetError as error:
        raise TrainError(str(error)) from None
    return dataset_samples(episodes, tokenizer, max_length=settings["max_length"], gamma=settings["gamma"])


def _checkpoint(out: Path, round_index: int) -> Path:
    return out / "rounds" / f"round-{round_index:03d}" / "checkpoint"


def _save_state(
    state_dir: Path, model, tokenizer, ctx: Context, optimizer, kl, round_index: int, config
) -> None:
    import torch

    from lmrl.finetune import models

    partial = state_dir.with_name("state.partial")
    shutil.rmtree(partial, ignore_errors=True)
    models.save(model, tokenizer, partial / "model")
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    if ctx.value_module is not None:
        torch.save(ctx.value_module.state_dict(), partial / "value_head.pt")
    record = {"round": round_index, "kl_coef": kl.coef, "identity": jsonable(config.identity())}
    (partial / "state.json").write_text(json.dumps(record))
    shutil.rmtree(state_dir, ignore_errors=True)
    partial.rename(state_dir)  # a kill leaves the old state or the new one, never half of one


def _plot(out: Path) -> None:
    """Mean return, success and invalid replies per round (``train_log.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [
        json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()
    ]
    if not records:
        return
    rounds = [r["round"] for r in records]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(rounds, [r["mean_return"] for r in records], marker="o")
    axes[0].set(xlabel="round", ylabel="mean return (rollouts)")
    axes[1].plot(rounds, [r["success"] for r in records], marker="o")
    axes[1].set(xlabel="round", ylabel="success (rollouts)")
    axes[2].plot(rounds, [r.get("invalid", 0.0) for r in records], marker="o", color="tab:red")
    axes[2].set(xlabel="round", ylabel="invalid replies (share of turns)")
    figure.tight_layout()
    figure.savefig(out / "train_log.png", dpi=100)
    plt.close(figure)


def _figures(record: dict[str, Any]) -> str:
    """The progress bar's line for a round: mean return, success, KL, loss, episodes/s."""
    return (
        f"return {record['mean_return']:.2f}  success {record['success']:.0%}  "
        f"invalid {record.get('invalid', 0.0):.0%}  "
        f"kl {record.get('kl', 0.0):.4f}  loss {record.get('loss', 0.0):.4f}  "
        f"{record['episodes_per_s']:.1f} ep/s"
    )
