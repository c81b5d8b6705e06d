"""Online RL (`lmrl train --algo ppo|online-filtered-bc|grpo`): credit assignment against hand-computed
values, rollouts that train on exactly what was sampled with the weights of the round, resume after a
kill, and one-line errors."""

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
from lmrl.finetune import grpo, ppo
from lmrl.finetune.advantages import KLController, TurnTokens, gae, group_advantages, returns_to_go
from lmrl.finetune.models import load
from lmrl.finetune.online import Context, OnlineConfig, round_samples, train_online
from lmrl.finetune.policy import kl_to_reference, score
from lmrl.runner import RunConfig, plan

ROOT = Path(__file__).resolve().parent.parent


# --- credit assignment, by hand ------------------------------------------------------------------
def _nested(rows: list[list[float]]) -> list:
    """Rows rounded for comparison, their lengths kept (pytest.approx takes no nesting)."""
    return [[round(v, 9) for v in row] for row in rows]


def test_gae_runs_over_action_tokens_and_bootstraps_across_observations() -> None:
    # Turn 0: two action tokens (discount 1 inside the action, gamma 0.9 after it); turn 1: one token.
    turns = [TurnTokens([1.0, 2.0], [0.0, -1.0], [1.0, 0.9]), TurnTokens([3.0], [5.0], [0.9])]
    lam = 0.5
    # terminated: nothing after the last token
    d2 = 5.0 + 0.9 * 0.0 - 3.0  # 2.0
    d1 = -1.0 + 0.9 * 3.0 - 2.0  # -0.3: the last token of turn 0 bootstraps from turn 1's first token
    d0 = 0.0 + 1.0 * 2.0 - 1.0  # 1.0
    a2 = d2
    a1 = d1 + 0.9 * lam * a2
    a0 = d0 + 1.0 * lam * a1
    advantages, returns = gae(turns, final_value=0.0, lam=lam)
    assert _nested(advantages) == _nested([[a0, a1], [a2]])
    assert _nested(returns) == _nested([[a0 + 1.0, a1 + 2.0], [a2 + 3.0]])
    # truncated: the last token bootstraps from V of the state the episode was cut in
    cut, _ = gae(turns, final_value=10.0, lam=lam)
    b2 = 5.0 + 0.9 * 10.0 - 3.0
    assert cut[1] == pytest.approx([b2])
    assert cut[0][1] == pytest.approx(d1 + 0.9 * lam * b2)
    # lambda = 1 and zero values: the advantage is the discounted return-to-go
    mc, _ = gae([TurnTokens([0.0, 0.0], [0.0, -1.0], [1.0, 0.9]), TurnTokens([0.0], [5.0], [0.9])], 0.0, 1.0)
    assert _nested(mc) == _nested([[-1.0 + 0.9 * 5.0] * 2, [5.0]])


def test_group_advantages_per_turn_and_per_episode() -> None:
    group = [[-1.0, -1.0, 0.0], [-1.0, 0.0], [-1.0, -1.0, -1.0, -1.0]]
    assert returns_to_go(group[0], 1.0) == [-2.0, -1.0, 0.0]
    # per turn: own return-to-go minus the others' at the same turn (those that reached it)
    togo = [[-2.0, -1.0, 0.0], [-1.0, 0.0], [-4.0, -3.0, -2.0, -1.0]]
    expected = [
        [-2.0 - (-1.0 - 4.0) / 2, -1.0 - (0.0 - 3.0) / 2, 0.0 - (-2.0)],
        [-1.0 - (-2.0 - 4.0) / 2, 0.0 - (-1.0 - 3.0) / 2],
        [-4.0 - (-2.0 - 1.0) / 2, -3.0 - (-1.0 + 0.0) / 2, -2.0 - 0.0, 0.0],  # turn 3: nobody else
    ]
    assert togo == [returns_to_go(g, 1.0) for g in group]
    assert _nested(group_advantages(group, 1.0, "turn")) == _nested(expected)
    # per episode: the return against the others' mean, on every turn
    episode = group_advantages(group, 1.0, "episode")
    assert _nested(episode) == _nested([[-2.0 - (-2.5)] * 3, [-1.0 - (-3.0)] * 2, [-4.0 - (-1.5)] * 4])
    scaled = group_advantages(group, 1.0, "episode", scale=True)
    std = torch.tensor([-2.0, -1.0, -4.0]).std().item()
    assert scaled[0][0] == pytest.approx(0.5 / std, rel=1e-4)
    # a discount applies within the return-to-go
    assert returns_to_go([1.0, 1.0], 0.5) == [1.5, 1.0]


def test_kl_is_zero_for_the_reference_policy_and_the_controller_adapts() -> None:
    logprobs = torch.log_softmax(torch.randn(3, 7), dim=-1)
    assert torch.equal(kl_to_reference(logprobs, logprobs), torch.zeros(3, 7))
    assert bool((kl_to_reference(logprobs, logprobs.roll(1, dims=1)) > 0).any())
    fixed = KLController(0.1)
    assert fixed.update(5.0, 100) == 0.1
    adaptive = KLController(0.1, target=1.0, horizon=100)
    assert adaptive.update(5.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))  # clipped at +20%
    assert adaptive.update(0.5, 10) < 0.1 * (1 + 0.2 * 10 / 100)


def test_same_starts_replays_each_start_with_its_own_agent_stream(tmp_path) -> None:
    config = RunConfig(out=tmp_path, tasks=["maze-fo"], models=["m"], episodes=2, epochs=3, same_starts=True)
    specs = plan(config)
    assert len({s.key for s in specs}) == 6
    for index in (0, 1):
        group = [s for s in specs if s.index == index]
        assert len({s.seed for s in group}) == 1  # one start
        assert len({s.agent_seed or s.seed for s in group}) == 3  # three sampling streams
    assert "same_starts" in config.identity() and "same_starts" not in RunConfig(tmp_path, [], []).identity()


# --- rollouts and updates on a real tiny model ----------------------------------------------------
@pytest.fixture
def policy(maze_policy) -> Path:
    return maze_policy


def _online(policy: Path, out: Path, algo: str = "ppo", **overrides) -> OnlineConfig:
    settings = dict(
        algo=algo, task="maze-fo", out=out, base=str(policy), rounds=2, episodes_per_round=8, max_turns=4,
        group_size=4, concurrency=8, batch_size=8,
    )  # fmt: skip
    settings.update(overrides)
    return OnlineConfig(**settings)


def test_training_uses_the_sampled_tokens_and_each_round_plays_the_updated_weights(policy, tmp_path) -> None:
    out = tmp_path / "ppo"
    log = []
    train_online(_online(policy, out, lr=1e-3), progress=False, on_log=log.append)
    assert [r["round"] for r in log] == [0, 1]
    model, tokenizer = load(policy)
    round0 = lmrl.load_run(out / "rounds" / "round-000" / "run")
    assert len(round0) == 8 and {e.models["agent"] for e in round0} == {f"local/{policy.resolve()}"}
    turns = [t for e in round0 for t in e.turns]
    # the stored ids are what was said, never re-tokenized; their log-probabilities are the policy's
    assert all(t.token_ids and tokenizer.decode(t.token_ids).strip() == t.raw_output.strip() for t in turns)
    ctx = Context(model.eval(), tokenizer, {"max_length": 256, "gamma": 0.99}, "cpu")
    samples = [s for turns_ in round_samples(ctx, round0, "maze-fo") for s in turns_]
    assert [s.action_ids for s in samples] == [t.token_ids for t in turns]
    recomputed = score(model, samples, tokenizer.pad_token_id, "cpu")[0]
    stored = [s.logprobs for s in samples]
    assert torch.allclose(torch.tensor(sum(recomputed, [])), torch.tensor(sum(stored, [])), atol=1e-4)
    # round 1 was played by the weights after round 0's update (and names that checkpoint)
    round1 = lmrl.load_run(out / "rounds" / "round-001" / "run")
    after0 = out / "rounds" / "round-000" / "checkpoint"
    assert {e.models["agent"] for e in round1} == {f"local/{after0.resolve()}"}
    updated, _ = load(after0)
    samples1 = [s for turns_ in round_samples(ctx, round1, "maze-fo") for s in turns_]
    stored1 = torch.tensor([x for s in samples1 for x in s.logprobs])
    by_updated = torch.tensor(sum(score(updated.eval(), samples1, tokenizer.pad_token_id, "cpu")[0], []))
    by_start = torch.tensor(sum(score(model, samples1, tokenizer.pad_token_id, "cpu")[0], []))
    assert torch.allclose(stored1, by_updated, atol=1e-4)
    assert not torch.allclose(stored1, by_start, atol=1e-3)
    # the result plays through the harness; the log says where the time went
    assert (out / "model.safetensors").exists() and (out / "train_log.png").exists()
    assert all(r["rollout_s"] > 0 and r["update_s"] > 0 and r["tokens_per_s"] > 0 for r in log)
    # the share of refused replies, as the round's run directory counts them
    for record, episodes in zip(log, (round0, round1), strict=True):
        replies = [t.invalid for e in episodes for t in e.turns]
        assert record["invalid"] == pytest.approx(sum(replies) / len(replies))
    assert not (out / "state").exists()


def test_one_ppo_update_raises_the_log_probability_of_rewarded_actions(policy, tmp_path) -> None:
    config = _online(policy, tmp_path / "one", rounds=1, episodes_per_round=16)
    train_online(config, progress=False)
    episodes = lmrl.load_run(config.out / "rounds" / "round-000" / "run")
    model, tokenizer = load(policy)
    settings = {
        "max_length": 256,
        "gamma": 0.99,
        "lam": 0.95,
        "clip": 0.2,
        "value_clip": 0.2,
        "value_coef": 0.5,
    }
    ctx = Context(model, tokenizer, settings, "cpu")
    ctx.value_head = torch.nn.Linear(model.config.hidden_size, 1)
    items, _ = ppo.prepare(ctx, episodes, round_samples(ctx, episodes, "maze-fo"))
    # Reward one move: its turns get advantage +1, every other turn -1 (as a round's GAE would if
    # that move alone paid), then one pass of PPO minibatch steps.
    moves = [tokenizer.decode(i.sample.action_ids).strip() for i in items]
    favourite = max(set(moves), key=moves.count)
    for item, move in zip(items, moves, strict=True):
        item.advantages = [1.0 if move == favourite else -1.0] * len(item.advantages)
    optimizer = torch.optim.AdamW([*model.parameters(), *ctx.value_head.parameters()], lr=2e-4)
    model.eval()  # no dropout: the change is the update's alone
    for start in range(0, len(items), 8):
        loss, _ = ppo.loss(ctx, items[start : start + 8])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = score(model, [i.sample for i in items], tokenizer.pad_token_id, "cpu")[0]
    rises = [sum(a) - sum(i.old_logprobs) for i, a in zip(items, after, strict=True)]
    rewarded = [r for r, m in zip(rises, moves, strict=True) if m == favourite]
    punished = [r for r, m in zip(rises, moves, strict=True) if m != favourite]
    assert rewarded and punished
    assert sum(rewarded) / len(rewarded) > 0 > sum(punished) / len(punished)
    assert (
        sum(r > 0 for r in rewarded) > len(rewarded) / 2 and sum(r < 0 for r in punished) > len(punished) / 2
    )


@pytest.mark.parametrize("algo", ["grpo", "online-filtered-bc"])
def test_grpo_and_online_filtered_bc_train_from_their_rounds(algo, policy, tmp_path) -> None:
    log = []
    train_online(_online(policy, tmp_path / algo, algo=algo, rounds=1), progress=False, on_log=log.append)
    episodes = lmrl.load_run(tmp_path / algo / "rounds" / "round-000" / "run")
    if algo == "grpo":  # two starts, four episodes each, one start per group
        assert sorted(e.epoch for e in episodes) == [0, 0, 1, 1, 2, 2, 3, 3]
        for index in (0, 1):
            assert len({e.seed for e in episodes if e.index == index}) == 1
        assert log[0]["groups"] == 2
        model, tokenizer = load(tmp_path / algo)
        ctx = Context(
            model, tokenizer, {"max_length": 256, "gamma": 0.99, "credit": "turn", "scale": False}, "cpu"
        )
        items, _ = grpo.prepare(ctx, episodes, round_samples(ctx, episodes, "maze-fo"))
        assert len(items) == sum(e.length for e in episodes)
    else:
        assert log[0]["kept_episodes"] == sum(bool(e.success) for e in episodes)
    assert (tmp_path / algo / "config.json").exists()


def test_a_killed_run_resumes_from_the_last_finished_round(policy, tmp_path) -> None:
    out = tmp_path / "killed"
    command = [
        sys.executable, "-m", "lmrl.cli", "train", "--algo", "online-filtered-bc", "--task", "maze-fo",
        "--base", str(policy), "--rounds", "3", "--episodes-per-round", "6", "--max-turns", "4",
        "--concurrency", "2", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    second = out / "rounds" / "round-001" / "run" / "episodes.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if second.exists() and second.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (out / "state" / "state.json").exists(), process.stderr.read().decode()[-2000:]
    assert json.loads((out / "state" / "state.json").read_text())["round"] == 0
    first = (out / "rounds" / "round-000" / "run" / "episodes.jsonl").read_bytes()
    assert main(command[3:]) == 0  # the rerun, in this process
    assert (out / "rounds" / "round-000" / "run" / "episodes.jsonl").read_bytes() == first  # not replayed
    keys = [json.loads(line)["key"] for line in second.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 6  # the killed round's finished episodes kept, none twice
    rounds = [json.loads(line)["round"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert rounds == [0, 1, 2]
    assert not (out / "state").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "ppo"], "give --task TASK"),
        (["--algo", "ppo", "--task", "maze-fo", "--data", "x"], "--data is for offline"),
        (
            ["--algo", "grpo", "--task", "maze-fo", "--episodes-per-round", "10", "--group-size", "4"],
            "multiple of",
        ),
        (["--algo", "ppo", "--task", "no-such-task"], "no-such-task"),
        (["--algo", "ppo", "--task", "maze-fo", "--base", "/nonexistent"], "/nonexistent"),
        (["--algo", "ppo", "--task", "maze-fo", "--bc-weight", "1"], "--bc-data"),
        (["--algo", "online-filtered-bc", "--task", "maze-fo", "--filter", "top:2"], "--filter"),
        (["--algo", "bc"], "give --data"),
        (["--algo", "ppo", "--task", "maze-fo", "--task-option", "maze-fo.nope=1"], "no option(s) nope"),
        (["--algo", "ppo", "--task", "endgames", "--rollout-task-option", "endgames.positions=x"], "'x'"),
        (["--algo", "ppo", "--task", "maze-fo", "--task-option", "wordle.vocab=full"], "plays 'maze-fo'"),
        (["--algo", "bc", "--data", "x", "--rollout-task-option", "x.y=1"], "for online rounds"),
        (["--algo", "ppo", "--task", "maze-fo", "--lr-schedule", "cosine"], "--lr-schedule is for offline"),
        (["--algo", "ppo", "--task", "maze-fo", "--warmup-steps", "10"], "are offline settings"),
        (["--algo", "ppo", "--task", "maze-fo", "--heads", "linear"], "--heads is for MC and ILQL"),
        (["--algo", "ppo", "--task", "maze-fo", "--truncation", "bootstrap"], "--truncation is for MC"),
        (["--algo", "ppo", "--task", "maze-fo", "--backup", "action"], "--backup is for offline ILQL"),
        (["--algo", "ppo", "--task", "maze-fo", "--value-weight", "0.1"], "--value-weight is for MC"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["train", *args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (out / "rounds").exists()


def test_rollouts_play_the_training_positions_and_evaluations_the_evaluation_set(policy, tmp_path) -> None:
    # endgames: rounds draw random training positions (--rollout-task-option), the evaluations play
    # the fixed evaluation set; both take --task-option (a fast engine), and the real engine answers.
    from lmrl.rundir import read_manifest
    from lmrl.tasks.chess.endgames import load_positions

    out = tmp_path / "endgames"
    config = _online(
        policy, out, algo="online-filtered-bc", task="endgames", rounds=1, episodes_per_round=4,
        max_turns=2, eval_every=1, eval_episodes=4, task_options={"opponent_depth": 1},
        rollout_task_options={"positions": "random"},
    )  # fmt: skip
    train_online(config, progress=False)
    evaluation_set = {p.fen for p in load_positions()}
    round_dir = out / "rounds" / "round-000"

    def options(run: Path) -> tuple:
        played = read_manifest(run)["tasks"]["endgames"]["options"]
        return played["positions"], played["opponent_depth"]

    assert options(round_dir / "run") == ("random", 1)
    played = {e.info["start_fen"] for e in lmrl.load_run(round_dir / "run")}
    assert len(played) == 4 and not played & evaluation_set
    assert options(round_dir / "eval") == ("eval", 1)
    assert {e.info["start_fen"] for e in lmrl.load_run(round_dir / "eval")} <= evaluation_set
    # the options are part of what a resumed run must share
    assert "rollout_task_options" in config.identity()
    assert "task_options" not in _online(policy, out).identity()


def test_lmrl_report_reads_an_online_run(policy, tmp_path) -> None:
    from lmrl.reports.report import learning_curve, write_report

    out = tmp_path / "online"
    config = _online(policy, out, algo="online-filtered-bc", filter="top:0.5", eval_every=1, eval_episodes=3)
    train_online(config, progress=False)
    report = write_report([out], tmp_path / "report")
    (info,) = report.loaded.training
    curve = learning_curve(info, report.loaded)
    assert list(curve["step"]) == [1, 2]  # each round's evaluation, after 1 and 2 updates
    assert list(info.log["step"]) == [1, 2]
    ranked = report.loaded.episodes[~report.loaded.episodes["step_eval"]]
    assert len(ranked) == 3  # the leaderboard ranks the last round's evaluation
    assert (out / "rounds" / "round-001" / "eval" / "episodes.jsonl").exists()
    # without evaluations, the rounds' own rollouts make the curve (at 0 and 1 updates)
    bare = tmp_path / "bare"
    train_online(_online(policy, bare, algo="online-filtered-bc", filter="top:0.5"), progress=False)
    loaded = write_report([bare], tmp_path / "report-bare").loaded
    assert list(learning_curve(loaded.training[0], loaded)["step"]) == [0, 1]


@pytest.mark.parametrize(("task", "algo", "expected"), [
    ("wordle", "online-filtered-bc", "top:0.3"),  # the paper's: most behaviour games succeed
    ("maze-fo", "online-filtered-bc", "success"),
    ("wordle", "ppo", "success"),  # unused; the old default, so saved states resume
])  # fmt: skip
def test_the_online_filter_defaults_to_the_papers_for_the_task(task, algo, expected, tmp_path) -> None:
    from lmrl.finetune.online import OnlineConfig, train_online
    from lmrl.finetune.trainer import TrainError

    config = OnlineConfig(algo=algo, task=task, out=tmp_path / "o", base="tiny", rounds=0)
    with pytest.raises(TrainError, match="--rounds"):  # resolved before the checks, so before any work
        train_online(config, progress=False)
    assert config.filter == expected
