"""`lmrl train`: each algorithm's loss goes down, a checkpoint the harness plays, resume after a
kill, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import lmrl
from lmrl.cli import main
from lmrl.finetune import bc, ilql, mc_returns
from lmrl.finetune.data import collate, dataset_samples, load_dataset
from lmrl.finetune.models import load, prepare_base

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def maze_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "behavior"
    lmrl.run("maze-fo", "scripted/behavior", episodes=25, out=out)
    return out


@pytest.fixture(scope="module")
def wordle_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "wordle"
    lmrl.run("wordle", "scripted/behavior", episodes=5, out=out)
    return out


@pytest.mark.parametrize(
    ("algo", "backup", "heads", "truncation"),
    [
        (bc, "token", "linear", "observed"),
        (mc_returns, "token", "linear", "observed"),
        (mc_returns, "token", "mlp", "observed"),
        (mc_returns, "token", "mlp", "bootstrap"),
        (ilql, "token", "linear", "observed"),
        (ilql, "action", "linear", "observed"),
        (ilql, "action", "mlp", "observed"),
    ],
    ids=[
        "bc", "mc", "mc-mlp-heads", "mc-bootstrapped", "ilql", "ilql-action-backup",
        "ilql-action-backup-mlp-heads",
    ],
)  # fmt: skip
def test_one_step_lowers_each_loss(algo, backup, heads, truncation, maze_data, tmp_path) -> None:
    torch.manual_seed(0)
    model, tokenizer = load(prepare_base("tiny", "maze-fo", tmp_path / "base", seed=0))
    samples = dataset_samples(load_dataset([maze_data])[:4], tokenizer, max_length=256, gamma=0.9)
    batch = collate(samples[:16], tokenizer.pad_token_id)
    settings = {
        "gamma": 0.9,
        "tau": 0.7,
        "cql_weight": 0.1,
        "polyak": 0.005,
        "backup": backup,
        "heads": heads,
        "truncation": truncation,
    }
    heads = algo.make_heads(model, settings)
    assert heads is None or heads.mlp == (settings["heads"] == "mlp")
    parameters = list(model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    optimizer = torch.optim.SGD([p for p in parameters if p.requires_grad], lr=0.05)
    model.eval()  # no dropout: the same batch must score lower after the step
    before, metrics = algo.loss(model, heads, batch, settings)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after, _ = algo.loss(model, heads, batch, settings)
    assert float(after) < float(before), metrics


def test_train_writes_a_checkpoint_the_harness_plays(maze_data, tmp_path, capsys) -> None:
    out = tmp_path / "mc"
    args = ["train", "--algo", "mc", "--data", str(maze_data), "--out", str(out), "--max-steps", "6"]
    assert main([*args, "--eval-episodes", "3", "--eval-every", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "3 evaluation episodes" in printed
    for name in ("config.json", "model.safetensors", "tokenizer.json", "value_heads.json", "train_log.png"):
        assert (out / name).exists(), name
    assert json.loads((out / "value_heads.json").read_text())["beta"] == 8.0  # maze-fo's default
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eval" in r] == [3, 6]
    assert all(r["tokens_per_s"] > 0 and r["loss"] > 0 for r in log if "loss" in r)
    assert not (out / "state").exists()  # finished: nothing left to resume
    # The evaluation runs are ordinary run directories; the checkpoint plays through the CLI too.
    final = lmrl.load_run(out / "evals" / "final")
    assert len(final) == 3
    # Maze evaluations pick among the four moves (the paper's re-ranker): a 6-step model that would
    # generate garbage makes no invalid move.
    assert all(turn.action is not None and not turn.invalid for e in final for turn in e.turns)
    played = tmp_path / "played"
    run = ["run", "--task", "maze-fo", "--model", f"local/{out}", "--style", "text", "--episodes", "2"]
    run += ["--max-turns", "3"]  # generating, a 6-step model wanders to the cap of 101 turns
    assert main([*run, "--local-option", "beta=0", "--out", str(played), "--no-progress"]) == 0
    assert len(lmrl.load_run(played)) == 2


@pytest.mark.parametrize("algo", ["mc", "ilql"])
def test_a_frozen_policy_keeps_the_starts_weights_and_trains_only_the_value_heads(algo, maze_data, tmp_path):
    from safetensors.torch import load_file

    from lmrl.finetune.trainer import TrainConfig, train

    start = tmp_path / "bc"
    assert main(["train", "--algo", "bc", "--data", str(maze_data), "--out", str(start), "--max-steps", "2",
                 "--eval-episodes", "0", "--no-progress"]) == 0  # fmt: skip
    out = tmp_path / algo
    common = {"data": [str(maze_data)], "base": str(start), "out": out, "eval_episodes": 0, "log_every": 1}
    train(TrainConfig(algo=algo, policy="frozen", max_steps=30, lr=0.01, **common), progress=False)
    before, after = load_file(start / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)  # the policy it plays: BC's
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    q = [r["q"] for r in log if "q" in r]
    assert len(q) == 30 and sum(q[-5:]) < 0.5 * sum(q[:5])  # the heads learnt (a value loss fell)
    assert {r["bc"] for r in log if "bc" in r} != set()  # BC's loss is still logged, not trained
    assert json.loads((out / "train_config.json").read_text())["policy"] == "frozen"
    heads = json.loads((out / "value_heads.json").read_text())
    assert heads["algo"] == algo  # the harness picks them up as for any MC/ILQL checkpoint


def test_the_rotary_base_trains_and_plays(wordle_data, tmp_path) -> None:
    out = tmp_path / "rope"
    args = ["train", "--algo", "ilql", "--data", str(wordle_data), "--base", "tiny-rope", "--out", str(out)]
    assert main([*args, "--max-steps", "3", "--eval-episodes", "2", "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("llama", 4, 128)
    assert json.loads((out / "value_heads.json").read_text())["hidden_size"] == 128
    # Played through the re-ranker over Wordle's vocabulary: every guess is a word.
    final = lmrl.load_run(out / "evals" / "final")
    assert len(final) == 2 and all(not turn.invalid for e in final for turn in e.turns)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("constant", [1.0, 1.0, 1.0, 1.0]),
        ("linear", [1.0, 0.75, 0.5, 0.25]),
        ("cosine", [1.0, 0.854, 0.5, 0.146]),
        ("warmup", [0.5, 1.0, 1.0, 1.0]),  # two warm-up steps, then constant
        ("linear-warmup", [0.5, 1.0, 1.0, 0.5]),  # the decay spans the two steps after the warm-up
    ],
)
def test_the_lr_schedule_sets_each_steps_rate(schedule, expected, maze_data, tmp_path) -> None:
    from lmrl.finetune.trainer import TrainConfig, train

    warmup = 2 if "warmup" in schedule else 0
    schedule = {"warmup": "constant", "linear-warmup": "linear"}.get(schedule, schedule)
    config = TrainConfig(
        algo="bc", data=[str(maze_data)], out=tmp_path / "bc", max_steps=4, lr=1e-3, lr_schedule=schedule,
        warmup_steps=warmup, eval_episodes=0, log_every=1,
    )  # fmt: skip
    train(config, progress=False)
    log = [json.loads(line) for line in (tmp_path / "bc" / "train_log.jsonl").read_text().splitlines()]
    assert [round(r["lr"] / 1e-3, 3) for r in log if "lr" in r] == expected


def test_adam_beta2_reaches_the_optimizer_and_a_resume_must_share_it(maze_data, tmp_path) -> None:
    import torch

    from lmrl.finetune.trainer import TrainConfig, TrainError, train

    class Stop(Exception):
        pass

    def stop_after_step_2(record: dict) -> None:
        if record.get("step") == 2:
            raise Stop  # as a kill would: the saved state stays

    common = {"algo": "bc", "data": [str(maze_data)], "out": tmp_path / "bc", "eval_episodes": 0}
    config = TrainConfig(**common, max_steps=4, save_every=1, log_every=1, adam_beta2=0.95)
    with pytest.raises(Stop):
        train(config, progress=False, on_log=stop_after_step_2)
    saved = torch.load(tmp_path / "bc" / "state" / "optimizer.pt", weights_only=True)
    assert [tuple(group["betas"]) for group in saved["param_groups"]] == [(0.9, 0.95)]
    with pytest.raises(TrainError):  # another beta2 is another run: it must not continue this state
        train(TrainConfig(**common, max_steps=4), progress=False)


@pytest.mark.parametrize("heads", ["linear", "mlp"])
def test_ilql_with_action_backup_saves_q_guidance_and_plays(heads, maze_data, tmp_path) -> None:
    out = tmp_path / "ilql"
    args = ["train", "--algo", "ilql", "--backup", "action", "--data", str(maze_data), "--out", str(out)]
    assert main([*args, "--heads", heads, "--max-steps", "3", "--eval-episodes", "2", "--no-progress"]) == 0
    meta = json.loads((out / "value_heads.json").read_text())
    assert meta["algo"] == "ilql" and meta["extraction"] == "q"  # Q after the action's last token
    assert meta["mlp"] == (heads == "mlp")
    config = json.loads((out / "train_config.json").read_text())
    assert config["backup"] == "action" and config["heads"] == heads
    final = lmrl.load_run(out / "evals" / "final")
    assert len(final) == 2 and all(not turn.invalid for e in final for turn in e.turns)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "bc", "--data", "/nonexistent/run"], "not an lmrl run directory"),
        (["--algo", "bc", "--data", "{maze}", "--data", "{wordle}"], "mixes tasks"),
        (["--algo", "bc", "--data", "{maze}", "--base", "/nonexistent/ckpt"], "not a checkpoint directory"),
        (["--algo", "filtered-bc", "--data", "{maze}", "--filter", "best"], "--filter must be"),
        (["--algo", "nope", "--data", "{maze}"], "invalid choice"),
        (["--algo", "bc", "--data", "{maze}", "--lora", "rank=4"], "--lora"),
        (["--algo", "bc", "--data", "{maze}", "--eval-option", "colour=blue"], "--eval-option 'colour=blue'"),
        (["--algo", "bc", "--data", "{maze}", "--eval-option", "beta=-1"], "beta must be"),
        (["--algo", "bc", "--data", "{maze}", "--task-option", "maze-fo.walls=2"], "no option(s) walls"),
        (["--algo", "bc", "--data", "{maze}", "--task-option", "wordle.vocab=full"], "plays 'maze-fo'"),
        (["--algo", "bc", "--data", "{wordle}", "--task-option", "wordle.vocab=0"], "positive word count"),
        (["--algo", "mc", "--data", "{maze}", "--backup", "action"], "--backup action is an ILQL setting"),
        (["--algo", "bc", "--data", "{maze}", "--lr-schedule", "step"], "--lr-schedule: invalid choice"),
        (["--algo", "bc", "--data", "{maze}", "--heads", "linear"], "--heads linear is an MC/ILQL setting"),
        (["--algo", "mc", "--data", "{maze}", "--heads", "deep"], "--heads: invalid choice"),
        (["--algo", "ilql", "--data", "{maze}", "--truncation", "bootstrap"], "ILQL always bootstraps"),
        (["--algo", "bc", "--data", "{maze}", "--truncation", "bootstrap"], "is an MC setting"),
        (["--algo", "mc", "--data", "{maze}", "--truncation", "guess"], "--truncation: invalid choice"),
        (["--algo", "bc", "--data", "{maze}", "--value-weight", "0.1"], "--value-weight is an MC"),
        (
            ["--algo", "filtered-bc", "--data", "{maze}", "--policy", "frozen"],
            "--policy frozen is an MC/ILQL",
        ),
        (["--algo", "mc", "--data", "{maze}", "--policy", "fixed"], "--policy: invalid choice"),
        (["--algo", "bc", "--data", "{maze}", "--warmup-steps", "-1"], "--warmup-steps must be a whole"),
        (["--algo", "bc", "--data", "{maze}", "--adam-beta2", "1"], "--adam-beta2 must be at least 0"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, maze_data, wordle_data, tmp_path, capsys) -> None:
    args = [a.format(maze=maze_data, wordle=wordle_data) for a in args]
    out = tmp_path / "ckpt"
    try:
        code = main(["train", *args, "--out", str(out), "--max-steps", "1", "--no-progress"])
    except SystemExit as exited:  # argparse's own errors (an unknown algorithm)
        code = exited.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (out / "config.json").exists()


def test_evaluations_play_with_the_task_options(wordle_data, tmp_path) -> None:
    from lmrl.rundir import read_manifest

    out = tmp_path / "bc"
    args = ["train", "--algo", "bc", "--data", str(wordle_data), "--out", str(out), "--max-steps", "2"]
    assert main([*args, "--eval-episodes", "2", "--task-option", "wordle.vocab=50", "--no-progress"]) == 0
    played = read_manifest(out / "evals" / "final")["tasks"]["wordle"]["options"]
    assert played["vocab"] == "50"  # not the default, "full"


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(maze_data, tmp_path) -> None:
    from safetensors.torch import load_file

    def arguments(out: Path) -> list[str]:
        return ["train", "--algo", "bc", "--data", str(maze_data), "--out", str(out), "--max-steps", "24",
                "--save-every", "4", "--batch-size", "8", "--lr-schedule", "cosine", "--eval-episodes", "0",
                "--no-progress"]  # fmt: skip

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "lmrl.cli", *arguments(out)]

    straight = tmp_path / "straight"  # in this process: only the killed run needs one of its own
    assert main(arguments(straight)) == 0
    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (killed / "state" / "state.json").exists() or (
        json.loads((killed / "state" / "state.json").read_text())["step"] < 8
    ):
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # The run's seconds add up over its sessions: the resumed one adds its own to the state's.
    state = json.loads((killed / "state" / "state.json").read_text())
    assert state["train_seconds"] > 0
    (killed / "state" / "state.json").write_text(json.dumps({**state, "train_seconds": 1000.0}))
    resumed_at = time.perf_counter()
    subprocess.run(command(killed), check=True, capture_output=True, cwd=ROOT)
    resumed_for = time.perf_counter() - resumed_at
    final = json.loads((killed / "train_log.jsonl").read_text().splitlines()[-1])
    assert 1000.0 < final["train_seconds"] < 1000.0 + resumed_for
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_rerunning_a_finished_command_trains_nothing(maze_data, tmp_path, capsys) -> None:
    out = tmp_path / "bc"
    args = ["train", "--algo", "bc", "--data", str(maze_data), "--out", str(out), "--max-steps", "2"]
    args += ["--eval-episodes", "0", "--no-progress"]
    assert main(args) == 0
    weights, log = (out / "model.safetensors").read_bytes(), (out / "train_log.jsonl").read_text()
    capsys.readouterr()
    assert main(args) == 0
    assert "is already trained: nothing to do" in capsys.readouterr().out
    assert (out / "model.safetensors").read_bytes() == weights  # not trained again
    assert (out / "train_log.jsonl").read_text() == log  # nor logged twice
    # Another run's settings or length would overwrite the checkpoint: one line, exit 2.
    for other, message in (
        (["--seed", "1"], "holds a different training run"),
        (["--max-steps", "3"], "of 2 steps"),
    ):
        assert main([*args, *other]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    assert (out / "model.safetensors").read_bytes() == weights


@pytest.mark.slow
def test_a_sigterm_during_evaluation_ends_130_and_logs_no_score(maze_data, tmp_path) -> None:
    """The runner stops cleanly on SIGTERM (what it played stays, resumable); a score of the part
    played must not be logged as the evaluation's, nor training go on as if it were."""
    out = tmp_path / "ckpt"
    command = [sys.executable, "-m", "lmrl.cli", "train", "--algo", "bc", "--data", str(maze_data),
               "--out", str(out), "--max-steps", "4", "--eval-every", "2", "--eval-episodes", "400",
               "--no-progress"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    played = out / "evals" / "step-2" / "run" / "episodes.jsonl"
    deadline = time.time() + 120
    while not played.exists() or not played.read_text().count("\n"):
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    err = process.stderr.read().decode()
    assert "Traceback" not in err
    assert "of 400 episodes; rerun the same command to resume" in err, err[-2000:]
    log = out / "train_log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert not any("eval" in record for record in records)
    assert not (out / "config.json").exists()  # the final checkpoint was never written


def test_lora_trains_and_the_merged_checkpoint_loads(maze_data, tmp_path) -> None:
    out = tmp_path / "lora"
    args = ["train", "--algo", "bc", "--data", str(maze_data), "--out", str(out), "--max-steps", "3"]
    assert main([*args, "--lora", "r=4,alpha=8", "--eval-episodes", "2", "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert "peft_config" not in config and (out / "model.safetensors").exists()  # adapters merged in
    assert len(lmrl.load_run(out / "evals" / "final")) == 2


def test_chat_style_trains_and_plays_in_chat(tmp_path) -> None:
    data = tmp_path / "data"  # short episodes: chat prompts hold the whole history
    lmrl.run("maze-fo", "scripted/behavior", episodes=3, max_turns=6, out=data, style="chat")
    out = tmp_path / "chat"
    args = ["train", "--algo", "bc", "--data", str(data), "--out", str(out), "--max-steps", "2"]
    assert main([*args, "--style", "chat", "--eval-episodes", "0", "--no-progress"]) == 0
    assert json.loads((out / "train_config.json").read_text())["style"] == "chat"
    played = tmp_path / "played"
    run = ["run", "--task", "maze-fo", "--model", f"local/{out}", "--style", "chat", "--episodes", "2"]
    assert main([*run, "--max-turns", "2", "--max-tokens", "8", "--out", str(played), "--no-progress"]) == 0
    assert len(lmrl.load_run(played)) == 2


def test_task_defaults_and_explicit_settings() -> None:
    from lmrl.finetune.trainer import TrainConfig, resolve

    def settings(pretrained: bool = False, **fields):
        return resolve(TrainConfig(algo="ilql", data=[], out=Path("x"), **fields), "maze-fo", pretrained)

    assert settings()["lr"] == 1e-3 and settings()["polyak"] == 0.1  # maze, from scratch
    assert settings(pretrained=True)["lr"] == 2e-5  # a task's lr is for from-scratch models only
    assert settings(lr=5e-4)["lr"] == 5e-4 and settings(polyak=0.005)["polyak"] == 0.005
    assert settings()["value_weight"] == 1.0 and settings(value_weight=0.1)["value_weight"] == 0.1
    assert resolve(TrainConfig(algo="bc", data=[], out=Path("x")), "chess", False)["lr"] == 3e-4


def test_filtered_bc_defaults_to_the_papers_filter_for_the_task(maze_data, tmp_path, capsys) -> None:
    from lmrl.finetune.data import filter_episodes
    from lmrl.finetune.trainer import TrainConfig, _data, identity_of

    def kept(data: Path, rule: str | None) -> tuple[str | None, list[str]]:
        config = TrainConfig(algo="filtered-bc", data=[str(data)], out=tmp_path / "out", filter=rule)
        episodes, _ = _data(config)
        return config.filter, [e.key for e in episodes]

    wordle_data = tmp_path / "wordle"
    lmrl.run("wordle", "scripted/behavior", episodes=30, out=wordle_data)
    wordle = load_dataset([wordle_data])
    top = [e.key for e in filter_episodes(wordle, top_fraction=0.3)]
    wins = [e.key for e in wordle if e.success]
    assert len(top) < len(wins)  # most behaviour games succeed: the paper keeps the best 30% instead
    assert kept(wordle_data, None) == ("top:0.3", top)
    assert f"--filter top:0.3 keeps {len(top)} of 30 episodes" in capsys.readouterr().err
    assert kept(wordle_data, "success") == ("success", wins)
    maze = load_dataset([maze_data])
    assert kept(maze_data, None) == ("success", [e.key for e in maze if e.success])
    # runs saved before the per-task default (filter "success") still resume as the same run, except
    # filtered BC's, whose data the filter chooses
    bc = {"algo": "bc", "data": ["d"], "seed": 0}
    assert identity_of({**bc, "filter": None}) == identity_of({**bc, "filter": "success"})
    fbc = {**bc, "algo": "filtered-bc"}
    assert identity_of({**fbc, "filter": "top:0.3"}) != identity_of({**fbc, "filter": "success"})
