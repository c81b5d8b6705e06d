"""The one training loop every offline algorithm runs on (``lmrl train``).

Built on ``accelerate``: ``accelerate launch --multi_gpu --num_processes N -m lmrl.cli train ...`` gives
DDP (or FSDP/DeepSpeed through its config) with no code change, each process taking its share of
every batch (weighted by action tokens, so the update is the one-process update); a plain ``lmrl
train`` is one process. (On a CPU-only machine ``--cpu --num_processes N`` starts several processes
only through ``mpirun``; ``--multi_gpu`` starts them with torchrun on the CPU too.)

An algorithm is a module with ``NAME``, ``EXTRACTION`` (``None``, ``"q"`` or ``"advantage"``),
``make_heads(model, settings)``, ``loss(model, heads, batch, settings) -> (loss, metrics)`` and
optionally ``after_step(heads, settings)`` and ``extraction(settings)`` (where a setting changes
what decoding adds) (``bc``, ``filtered_bc``, ``mc_returns``, ``ilql``).

The output directory is a checkpoint the harness plays as ``local/<out>`` (weights, tokenizer, and for
MC/ILQL ``value_heads.*`` with beta), plus ``train_config.json``, ``train_log.jsonl`` (losses, tokens/s,
evaluations), ``train_log.png``, ``evals/step-N/`` (ordinary run directories of the periodic
evaluations) and ``state/`` (what a killed run resumes from: rerun the same command).
"""

from __future__ import annotations

import importlib
import json
import math
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ALGORITHMS = {"bc": "bc", "filtered-bc": "filtered_bc", "mc": "mc_returns", "ilql": "ilql"}
BACKUPS = ("token", "action")  # ILQL: what one value hop crosses (lmrl.finetune.ilql)
LR_SCHEDULES = ("constant", "linear", "cosine")  # linear and cosine decay to 0 over the run's steps
HEAD_SHAPES = ("mlp", "linear")  # MC/ILQL value heads: the paper's 2-layer MLPs, or linear layers
TRUNCATIONS = ("observed", "bootstrap")  # MC: a cut episode's return, as seen or plus V(cut state)
# MC/ILQL: BC and value losses train the shared network (the paper's), or the starting checkpoint stays
# as it is (the policy it plays) and only the value heads learn, on its fixed features.
POLICIES = ("train", "frozen")
# Offline optimizer settings and their defaults: no warm-up, AdamW's own beta2.
OPTIMIZER_DEFAULTS: dict[str, Any] = {"warmup_steps": 0, "adam_beta2": 0.999}


def optimizer_setting_problem(name: str, value: float) -> str | None:
    """What is wrong with an ``OPTIMIZER_DEFAULTS`` setting's value, or None: the CLI and the learning
    bench check the same way before any training starts."""
    if name == "warmup_steps" and (value < 0 or not float(value).is_integer()):  # inf, nan too
        return "must be a whole number, not negative"
    if name == "adam_beta2" and not 0 <= value < 1:
        return "must be at least 0 and below 1"
    return None


# The settings that are one of a few words (the first, the default), as flags spell them.
WORD_SETTINGS: dict[str, tuple[str, ...]] = {
    "backup": BACKUPS,
    "lr_schedule": LR_SCHEDULES,
    "heads": HEAD_SHAPES,
    "truncation": TRUNCATIONS,
    "policy": POLICIES,
}
# Per-task defaults (reference lmrl-gym.md §7-8 where it gives them; CPU-sized otherwise).
# Maze, from scratch on a CPU: lr 1e-3 and a fast target (0.1) propagate values along a 20-move chain
# in thousands of steps rather than tens of thousands; tau 0.9 leans V toward the best move.
_MAZE = {"gamma": 0.99, "beta": 8.0, "tau": 0.9, "cql_weight": 0.01, "lr": 1e-3, "polyak": 0.1}
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "maze-fo": {**_MAZE, "max_length": 256},
    "maze-po": {**_MAZE, "max_length": 512},  # PO keeps a history
    "textnav-fo": {"gamma": 0.99, "beta": 4.0, "tau": 0.7, "cql_weight": 0.01, "max_length": 768},
    # PO keeps the whole history: behaviour episodes reach ~1,150 tokens, and a prompt cut to the budget
    # cannot be packed (one cut prompt sends the whole dataset back to per-turn training).
    "textnav-po": {"gamma": 0.99, "beta": 4.0, "tau": 0.7, "cql_weight": 0.01, "max_length": 2048},
    # Wordle from scratch: lr 1e-3 fits the letters faster (1.03 nats an action token after 6,000
    # BC steps with a cosine schedule, against 3e-4's 1.10 on 20,000 episodes)
    "wordle": {"gamma": 0.99, "beta": 4.0, "tau": 0.7, "cql_weight": 0.01, "lr": 1e-3, "max_length": 256},
}
# How the periodic evaluations play the checkpoint (local agent options, ``--eval-option``): on the
# maze, the paper's re-ranker over the four legal moves, for every algorithm alike; on Wordle the same
# re-ranker over the vocabulary (a from-scratch model cannot yet spell 400 words letter by letter).
TASK_EVAL_OPTIONS: dict[str, dict[str, Any]] = {
    "maze-fo": {"rerank": True},
    "maze-po": {"rerank": True},
    "wordle": {"rerank": True},
}
# Filtered BC keeps the successes, except where the paper keeps the best returns (§8: Wordle's top 30%,
# where three in four behaviour games succeed; the dialogue tasks' top 10%).
TASK_FILTERS: dict[str, str] = {
    "wordle": "top:0.3", "twenty-questions": "top:0.1", "guess-my-city": "top:0.1", "car-dealer": "top:0.1",
}  # fmt: skip
GENERIC_DEFAULTS: dict[str, Any] = {
    "gamma": 0.99,
    "beta": 4.0,
    "tau": 0.7,
    "cql_weight": 0.01,
    "value_weight": 1.0,  # MC/ILQL: the value losses' weight against BC's (the paper sums them: 1)
    "max_length": 1024,
    "polyak": 0.005,
    "support": 1e-3,  # decoding: Q re-ranks only tokens the BC policy gives at least this probability
}


class TrainError(ValueError):
    """Bad training input (an unknown algorithm or option, no data, a model that does not load)."""


@dataclass
class TrainConfig:
    algo: str
    data: list[str]
    out: Path
    base: str = "tiny"
    epochs: int = 1
    max_steps: int | None = None
    seed: int = 0
    lr: float | None = None  # default: the task's from scratch (else 3e-4), 2e-5 from a pretrained checkpoint
    batch_size: int = 32
    gamma: float | None = None
    discount: str = "per_turn"
    style: str = "text"  # chat: through the tokenizer's chat template (must be prefix-preserving)
    beta: float | None = None
    tau: float | None = None
    cql_weight: float | None = None
    value_weight: float | None = None  # MC/ILQL: weight of the value losses (1: the paper's sum)
    polyak: float | None = None  # ILQL target update rate (task default)
    backup: str = "token"  # ILQL: values cross one token (the paper) or one whole action per hop
    lr_schedule: str = "constant"  # linear/cosine: the lr falls to 0 by the last step, so values settle
    warmup_steps: int = OPTIMIZER_DEFAULTS["warmup_steps"]  # lr from 0 over these, then the schedule
    adam_beta2: float = OPTIMIZER_DEFAULTS["adam_beta2"]  # 0.95 forgets old gradient scales sooner
    heads: str = "mlp"  # MC/ILQL: 2-layer MLP value heads (the paper's), or linear ones
    truncation: str = "observed"  # MC: bootstrap adds V of the state a truncated episode was cut in
    policy: str = "train"  # MC/ILQL: frozen keeps the base's weights and trains only the value heads
    max_length: int | None = None
    filter: str | None = None  # filtered BC: success or top:FRACTION (None: the task's, TASK_FILTERS)
    packing: str = "auto"  # auto: one sequence per episode when every rendering only grows; off: per turn
    allow_mixed: bool = False
    lora: dict[str, Any] | None = None
    eval_every: int | None = None
    eval_episodes: int = 25
    eval_seed: int = 1000  # evaluation episodes come from seeds the training data never used
    eval_options: dict[str, Any] = field(default_factory=dict)  # local agent options (task defaults first)
    eval_task_options: dict[str, Any] = field(default_factory=dict)  # the evaluations' task options
    save_every: int = 50
    log_every: int = 10
    settings: dict[str, Any] = field(default_factory=dict)  # resolved hyper-parameters

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the run it continues."""
        return identity_of(asdict(self))


def identity_of(record: dict[str, Any]) -> dict[str, Any]:
    """``TrainConfig.identity`` of a config's fields (also of a saved ``train_config.json``)."""
    record = dict(record)
    # settings are derived (task defaults + the fields above); the rest may change on a rerun
    volatile = (
        "out", "max_steps", "eval_every", "eval_episodes", "eval_options", "eval_task_options",
        "save_every", "log_every", "settings",
    )  # fmt: skip
    for name in volatile:
        record.pop(name, None)
    for name, default in OPTIMIZER_DEFAULTS.items():
        if record.get(name, default) == default:  # states saved before the option resume
            record.pop(name, None)
    if record.get("algo") != "filtered-bc":  # only filtered BC reads it
        record.pop("filter", None)
    for name, words in WORD_SETTINGS.items():
        if record.get(name, words[0]) == words[0]:  # the default: states saved before the option resume
            record.pop(name, None)
    if record.get("value_weight") is None:  # likewise
        record.pop("value_weight", None)
    return record


def say(message: str) -> None:
    """A note on stderr, once (under ``accelerate launch`` from the main process only)."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(f"lmrl train: {message}", file=sys.stderr)


def task_filter(task: str) -> str:
    """Filtered BC's filter for ``task`` when none is given: the paper's (``TASK_FILTERS``)."""
    return TASK_FILTERS.get(task, "success")


def algorithm(name: str) -> Any:
    if name not in ALGORITHMS:
        raise TrainError(f"unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}")
    return importlib.import_module(f"lmrl.finetune.{ALGORITHMS[name]}")


def resolve(config: TrainConfig, task: str, pretrained: bool) -> dict[str, Any]:
    settings = dict(GENERIC_DEFAULTS)
    settings.update(TASK_DEFAULTS.get(task, {}))
    scratch_lr = settings.pop("lr", 3e-4)  # a task's lr is for from-scratch models
    settings["lr"] = 2e-5 if pretrained else scratch_lr
    for name in ("gamma", "beta", "tau", "cql_weight", "value_weight", "max_length", "lr", "polyak"):
        value = getattr(config, name)
        if value is not None:
            settings[name] = value
    if config.style == "chat" and config.max_length is None:  # a system prompt and chat markup on top
        settings["max_length"] = max(settings["max_length"], 2048)
    if config.style not in ("text", "chat"):
        raise TrainError(f"--style must be text or chat, not {config.style!r}")
    if config.discount not in ("per_turn", "per_token"):
        raise TrainError(f"--discount must be per_turn or per_token, not {config.discount!r}")
    settings["backup"] = config.backup
    settings["heads"] = config.heads
    settings["truncation"] = config.truncation
    return settings


def _data(config: TrainConfig) -> tuple[list[Any], str]:
    from lmrl.finetune.data import DatasetError, filter_episodes, load_dataset, top_fraction_of

    try:
        episodes = load_dataset(config.data, config.allow_mixed)
        if config.algo == "filtered-bc":
            config.filter = config.filter or task_filter(episodes[0].task)
            top = top_fraction_of(config.filter)
            everything = len(episodes)
            episodes = filter_episodes(episodes, success_only=top is None, top_fraction=top)
            say(f"--filter {config.filter} keeps {len(episodes):,} of {everything:,} episodes")
    except (DatasetError, ValueError) as error:
        raise TrainError(str(error)) from None
    return episodes, episodes[0].task


def train(config: TrainConfig, progress: bool = True, on_log: Callable[[dict], None] | None = None) -> dict:
    """Train, evaluate now and then, save; resume from ``out/state`` when it holds this run's state."""
    import torch
    from accelerate import Accelerator

    from lmrl.finetune import models
    from lmrl.finetune.data import DatasetError, dataset_samples, shuffled_batches

    algo = algorithm(config.algo)
    for name, words in WORD_SETTINGS.items():
        if getattr(config, name) not in words:
            flag = "--" + name.replace("_", "-")
            raise TrainError(f"{flag} must be one of {', '.join(words)}, not {getattr(config, name)!r}")
    if config.backup != "token" and config.algo != "ilql":
        raise TrainError(f"--backup {config.backup} is an ILQL setting; --algo {config.algo} has no values")
    if config.truncation != TRUNCATIONS[0] and config.algo != "mc":
        raise TrainError(
            f"--truncation {config.truncation} is an MC setting; ILQL always bootstraps a truncated end"
            if config.algo == "ilql"
            else f"--truncation {config.truncation} is an MC setting; --algo {config.algo} has no values"
        )
    if config.value_weight is not None and algo.EXTRACTION is None:
        raise TrainError(f"--value-weight is an MC/ILQL setting; --algo {config.algo} has no value heads")
    for name, default in (("heads", HEAD_SHAPES[0]), ("policy", POLICIES[0])):
        if (value := getattr(config, name)) != default and algo.EXTRACTION is None:
            raise TrainError(f"--{name} {value} is an MC/ILQL setting; --algo {config.algo} has no values")
    session_started = time.perf_counter()
    episodes, task = _data(config)
    out = config.out
    state_dir = out / "state"
    resumed = read_state(state_dir, config)
    # seconds of every session that trained these weights (a resumed run adds its earlier sessions')
    earlier = float(resumed.get("train_seconds", 0.0)) if resumed else 0.0

    def train_seconds() -> float:
        return earlier + time.perf_counter() - session_started

    if resumed is None and (finished := finished_run(config)) is not None:
        return finished  # a rerun of a finished command: nothing left to do
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    try:
        with accelerator.main_process_first():  # one process builds a from-scratch base, the rest read it
            base_dir = models.prepare_base(config.base, task, out / "base", config.seed)
        model, tokenizer = models.load(state_dir / "model" if resumed else base_dir, config.lora)
    except models.ModelError as error:
        raise TrainError(str(error)) from None
    config.settings = resolve(config, task, pretrained=config.base not in models.SIZES)
    settings = config.settings
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    try:  # a chat template that is not prefix-preserving is found here, before anything is written
        samples = dataset_samples(
            episodes,
            tokenizer,
            max_length=settings["max_length"],
            gamma=settings["gamma"],
            discount=config.discount,
            style=config.style,
        )
    except DatasetError as error:
        raise TrainError(str(error)) from None
    units, batch_size, collate_units, action_tokens = training_units(samples, config)
    heads = algo.make_heads(model, settings)
    if heads is not None and resumed:
        from lmrl.finetune.heads import ValueHeads

        heads, _ = ValueHeads.load(state_dir / "model")
    frozen = config.policy == "frozen"
    if frozen:
        model.requires_grad_(False)  # (not the other way: LoRA's wrapper froze what it leaves alone)
    parameters = list(model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    optimizer = torch.optim.AdamW(
        [p for p in parameters if p.requires_grad], lr=settings["lr"], betas=(0.9, config.adam_beta2)
    )
    if frozen:  # nothing of the model trains (DDP refuses such a module): only the heads are wrapped
        model, optimizer = model.to(accelerator.device), accelerator.prepare(optimizer)
    else:
        model, optimizer = accelerator.prepare(model, optimizer)
    if heads is not None:
        heads = accelerator.prepare(heads)
    if resumed:
        optimizer.load_state_dict(torch.load(state_dir / "optimizer.pt", weights_only=True))
    per_epoch = math.ceil(len(units) / batch_size)
    total = config.max_steps or per_epoch * config.epochs
    step = resumed["step"] if resumed else 0
    main = accelerator.is_main_process
    out.mkdir(parents=True, exist_ok=True)
    if main:
        (out / "train_config.json").write_text(json.dumps(jsonable(config), indent=2) + "\n")
    log = (out / "train_log.jsonl").open("a") if main else None
    pad = tokenizer.pad_token_id
    window: list[dict] = []
    tokens, started = 0, time.perf_counter()
    bar = StepProgress(total, step, enabled=progress and accelerator.is_main_process)
    try:
        while step < total:
            epoch, skip = divmod(step, per_epoch)
            for batch_units in shuffled_batches(units, batch_size, config.seed, epoch)[skip:]:
                if step >= total:
                    break
                mine, weight = rank_share(batch_units, accelerator, action_tokens)
                batch = {k: v.to(accelerator.device) for k, v in collate_units(mine, pad).items()}
                torch.manual_seed(config.seed * 1_000_003 + step)  # dropout per step: a resumed run matches
                model.train(not frozen)  # a frozen policy's features as it plays them: no dropout
                loss, metrics = algo.loss(model, heads, batch, settings)
                lr = scheduled_lr(settings["lr"], config.lr_schedule, step, total, config.warmup_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = weighted_step(accelerator, optimizer, loss, weight)
                metrics["lr"] = lr
                if hasattr(algo, "after_step"):
                    algo.after_step(accelerator.unwrap_model(heads), settings)
                step += 1
                tokens += int(batch["attention_mask"].sum())
                window.append({"loss": loss, **metrics})
                if step % config.log_every == 0 or step == total:
                    record = _summary(window, step, epoch, tokens / (time.perf_counter() - started))
                    window = []
                    _write(log, record, on_log)
                    bar.update(step, f"loss {record['loss']:.4f}  {record['tokens_per_s']:,.0f} tok/s")
                if config.eval_every and step % config.eval_every == 0 and step < total:
                    _write(
                        log, _evaluate(config, accelerator, model, heads, tokenizer, algo, task, step), on_log
                    )
                if step % config.save_every == 0 and step < total and accelerator.is_main_process:
                    _save_state(
                        state_dir, config, accelerator, model, heads, tokenizer, optimizer, step, algo,
                        train_seconds(),
                    )  # fmt: skip
        final = _evaluate(config, accelerator, model, heads, tokenizer, algo, task, step, final=True)
        final["train_seconds"] = round(train_seconds(), 3)
        _write(log, final, on_log)
    finally:
        bar.close()
        if log is not None:
            log.close()
    if accelerator.is_main_process:
        shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing to resume
        from lmrl.finetune.evaluation import plot_log

        plot_log(out / "train_log.jsonl", out / "train_log.png")
    return final


def training_units(samples: list[Any], config: TrainConfig) -> tuple[list[Any], int, Callable, Callable]:
    """What a batch is made of: whole episodes when every episode packs into one sequence (``packing``
    auto; then a batch takes as many episodes as hold about ``batch_size`` turns), else single turns.
    Returns (units, units per batch, their collate, their action-token count)."""
    from lmrl.finetune.data import collate, collate_packed, pack_dataset

    if config.packing not in ("auto", "off"):
        raise TrainError(f"--packing must be auto or off, not {config.packing!r}")
    packed = pack_dataset(samples) if config.packing == "auto" else None
    if not packed:
        cut = sum(s.truncated_prompt for s in samples)
        if config.packing == "auto" and cut:
            say(
                f"training per turn, not packed: {cut} of {len(samples)} prompts were cut to "
                f"--max-length {config.settings['max_length']} (a longer budget keeps whole episodes)"
            )
        return samples, config.batch_size, collate, lambda s: len(s.action_ids)
    turns_per_episode = len(samples) / len(packed)
    per_batch = max(1, round(config.batch_size / turns_per_episode))
    return packed, per_batch, collate_packed, lambda e: e.action_tokens


def _evaluate(config, accelerator, model, heads, tokenizer, algo, task, step, final=False) -> dict:
    """Save the weights (the output directory at the end, else ``evals/step-N/checkpoint``) and, when
    asked for, play them through the harness."""
    from lmrl.finetune.evaluation import evaluate

    where = config.out if final else config.out / "evals" / f"step-{step}" / "checkpoint"
    if accelerator.is_main_process:
        _save_checkpoint(where, config, accelerator, model, heads, tokenizer, algo)
    accelerator.wait_for_everyone()
    record: dict[str, Any] = {"step": step, "checkpoint": str(where)}
    if accelerator.is_main_process and config.eval_episodes:
        run_dir = (config.out / "evals" / "final") if final else where.parent / "run"
        options = {**TASK_EVAL_OPTIONS.get(task, {}), **config.eval_options}
        record["eval"] = evaluate(
            where, task, config.eval_episodes, config.eval_seed, run_dir, config.style, options,
            config.eval_task_options,
        )  # fmt: skip
    return record


def _save_checkpoint(where: Path, config, accelerator, model, heads, tokenizer, algo) -> None:
    from lmrl.finetune import models

    models.save(accelerator.unwrap_model(model), tokenizer, where)
    if heads is not None:
        accelerator.unwrap_model(heads).save(
            where,
            beta=config.settings["beta"],
            algo=config.algo,
            extraction=algo.extraction(config.settings) if hasattr(algo, "extraction") else algo.EXTRACTION,
            gamma=config.settings["gamma"],
            support=config.settings["support"],
        )


def _save_state(
    state_dir, config, accelerator, model, heads, tokenizer, optimizer, step, algo, seconds: float
) -> None:
    import torch

    partial = state_dir.with_name("state.partial")
    shutil.rmtree(partial, ignore_errors=True)
    _save_checkpoint(partial / "model", config, accelerator, model, heads, tokenizer, algo)
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    state = {"step": step, "identity": jsonable(config.identity()), "train_seconds": round(seconds, 3)}
    (partial / "state.json").write_text(json.dumps(state))
    shutil.rmtree(state_dir, ignore_errors=True)
    partial.rename(state_dir)  # a kill leaves either the old state or the new one, never half of one


def scheduled_lr(lr: float, schedule: str, step: int, total: int, warmup: int = 0) -> float:
    """The learning rate of step ``step`` (0-based) of ``total``: a function of the step alone, so a
    resumed run follows the schedule of an uninterrupted one. The first ``warmup`` steps rise linearly
    to ``lr``; the schedule then decays over the steps after them."""
    if step < warmup:
        return lr * (step + 1) / warmup
    done = (step - warmup) / max(total - warmup, 1)
    if schedule == "linear":
        return lr * (1.0 - done)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * done))
    return lr


# --- one optimizer step, shared by the offline and online loops ----------------------------------
def rank_share(batch: list[Any], accelerator: Any, tokens: Callable[[Any], int]) -> tuple[list[Any], float]:
    """This process's share of a minibatch and its weight. Under ``accelerate launch`` each process
    takes every n-th item and DDP averages the gradients; losses are means over action tokens, so each
    share is weighed by its action tokens and the averaged gradient is the whole minibatch's. A process
    left without items computes on the first one at weight 0 (DDP needs every rank's backward)."""
    mine = batch[accelerator.process_index :: accelerator.num_processes]
    weight = sum(tokens(item) for item in mine) / max(1, sum(tokens(item) for item in batch))
    return (mine or batch[:1]), weight


def weighted_step(
    accelerator: Any, optimizer: Any, loss: Any, weight: float, clip_norm: float | None = None
) -> float:
    """Backward (scaled so DDP's mean is the weighted sum), optional gradient clipping, step; returns
    the whole minibatch's loss (the weighted shares summed over processes)."""
    optimizer.zero_grad()
    accelerator.backward(loss * (accelerator.num_processes * weight))
    if clip_norm is not None:
        accelerator.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_norm)
    optimizer.step()
    return float(accelerator.reduce(loss.detach() * weight, reduction="sum"))


def read_state(state_dir: Path, config: Any) -> dict[str, Any] | None:
    """The saved state a rerun resumes from (None: start afresh); a state of another run is an error."""
    path = state_dir / "state.json"
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if state.get("identity") != jsonable(config.identity()):
        raise TrainError(f"{config.out} holds a different training run; use another --out")
    return state


def finished_run(config: Any) -> dict[str, Any] | None:
    """The final record (``already_trained``: true) of the training that finished in ``config.out``,
    or None when none did. A finished run of other settings or length is an error: its checkpoint is
    not what this command asks for, and training again would overwrite it."""
    out = config.out
    log, saved = out / "train_log.jsonl", out / "train_config.json"
    if not (log.exists() and saved.exists() and (out / "config.json").exists()):
        return None
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not records or Path(records[-1].get("checkpoint", "")).resolve() != out.resolve():  # logged last
        return None
    before = json.loads(saved.read_text())
    if identity_of(before) != jsonable(config.identity()):
        raise TrainError(f"{out} holds a different training run; use another --out")
    if (before.get("max_steps"), before.get("epochs")) != (config.max_steps, config.epochs):
        length = (
            f"{before['max_steps']} steps" if before.get("max_steps") else f"{before.get('epochs')} epochs"
        )
        raise TrainError(f"{out} holds a finished run of {length}; use another --out to train for longer")
    return {**records[-1], "already_trained": True}


def jsonable(value: Any) -> Any:
    return json.loads(
        json.dumps(asdict(value) if hasattr(value, "__dataclass_fields__") else value, default=str)
    )


def _summary(window: list[dict], step: int, epoch: int, tokens_per_s: float) -> dict:
    keys = {k for record in window for k in record}
    means = {k: sum(r[k] for r in window if k in r) / sum(k in r for r in window) for k in sorted(keys)}
    return {"step": step, "epoch": epoch, **means, "tokens_per_s": tokens_per_s, "time": time.time()}


def _write(log: Any, record: dict, on_log: Callable[[dict], None] | None) -> None:
    if log is None:  # not the main process: it does not log
        return
    log.write(json.dumps(record) + "\n")
    log.flush()
    if on_log:
        on_log(record)


class StepProgress:
    """A rich progress bar over steps (or rounds): a label, done/total, a line of figures, ETA."""

    def __init__(self, total: int, done: int, enabled: bool, label: str = "train") -> None:
        self.progress = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
        )  # fmt: skip
        self.progress.start()
        self.task = self.progress.add_task(label, total=total, completed=done, info="")

    def update(self, done: int, info: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, info=info)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
