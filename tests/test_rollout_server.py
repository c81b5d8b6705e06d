"""Online RL with rollouts on an OpenAI-compatible server (``lmrl train --rollout-server URL``): each
round is played by the weights the last round saved, and training uses what the server sampled.

Two real servers: ``transformers serve`` (weights reach it by naming the round's checkpoint, no token
ids in its answers) and ``weights_server`` (vLLM's answer shape with token ids and log-probabilities,
SGLang's ``/update_weights_from_disk`` route), both serving real checkpoints on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.request

import pytest
import torch
from serving import transformers_serve
from weights_server import WeightsServer

import lmrl
from lmrl.agents.litellm_agent import sampled_tokens
from lmrl.cli import main
from lmrl.finetune.models import load
from lmrl.finetune.online import Context, OnlineConfig, round_samples, train_online
from lmrl.finetune.policy import score


def _config(policy, out, **overrides) -> OnlineConfig:
    settings = dict(
        algo="ppo", task="maze-fo", out=out, base=str(policy), rounds=2, episodes_per_round=8, max_turns=4,
        concurrency=8, batch_size=8, lr=1e-3,
    )  # fmt: skip
    settings.update(overrides)
    return OnlineConfig(**settings)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_sampled_token_ids_are_read_only_when_the_server_says_them_as_ids() -> None:
    completions = {"tokens": ["token_id:5", "token_id:17"], "token_logprobs": [-0.5, -1.25]}
    assert sampled_tokens(completions) == ([5, 17], [-0.5, -1.25])
    chat = {"content": [{"token": "token_id:3", "logprob": -2.0}]}
    assert sampled_tokens(chat) == ([3], [-2.0])
    assert sampled_tokens({"tokens": ["move", " up"], "token_logprobs": [-1.0, -1.0]}) == (None, None)
    assert sampled_tokens({"tokens": ["token_id:5"], "token_logprobs": [None]}) == ([5], None)
    assert sampled_tokens(None) == (None, None)


@pytest.mark.slow
def test_a_weights_reloading_server_plays_each_round_and_training_uses_its_samples(maze_policy, tmp_path):
    out = tmp_path / "ppo"
    log: list[dict] = []
    with WeightsServer(maze_policy) as server:
        config = _config(
            maze_policy,
            out,
            rollout_server=server.api_base,
            rollout_sync="post:/update_weights_from_disk",
            rollout_request={"return_tokens_as_token_ids": True},
        )
        train_online(config, progress=False, on_log=log.append)
        loads = server.loads
    after0 = out / "rounds" / "round-000" / "checkpoint"
    # loaded at start, then before each round: the base, then round 0's update
    assert loads[1:] == [str(maze_policy.resolve()), str(after0.resolve())]
    assert [r["sampled_ids"] for r in log] == [1.0, 1.0] and all(r["steps"] > 0 for r in log)
    model, tokenizer = load(maze_policy)
    ctx = Context(model.eval(), tokenizer, {"max_length": 256, "gamma": 0.99}, "cpu")
    round1 = lmrl.load_run(out / "rounds" / "round-001" / "run")
    assert {e.models["agent"] for e in round1} == {"hosted_vllm/policy"}
    turns = [t for e in round1 for t in e.turns]
    assert all(t.token_ids and tokenizer.decode(t.token_ids) == t.raw_output for t in turns)
    samples = [s for episode in round_samples(ctx, round1, "maze-fo") for s in episode]
    assert [s.action_ids for s in samples] == [t.token_ids for t in turns]  # what was sampled, as sampled
    stored = torch.tensor([x for s in samples for x in s.logprobs])
    updated, _ = load(after0)
    by_updated = torch.tensor(sum(score(updated.eval(), samples, tokenizer.pad_token_id, "cpu")[0], []))
    by_start = torch.tensor(sum(score(model, samples, tokenizer.pad_token_id, "cpu")[0], []))
    assert torch.allclose(stored, by_updated, atol=1e-4)  # round 1 was played by round 0's weights
    assert not torch.allclose(stored, by_start, atol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None,
    reason='needs transformers[serving] (pip install "transformers[serving]")',
)
def test_transformers_serve_plays_each_round_from_the_rounds_checkpoint(maze_policy, tmp_path):
    out = tmp_path / "ppo"
    log: list[dict] = []
    with transformers_serve(["--model-timeout", "600"], tmp_path / "serve.log") as api_base:
        train_online(_config(maze_policy, out, rollout_server=api_base), progress=False, on_log=log.append)
        served = {m["id"] for m in _get(api_base + "/models")["data"]}
    after0 = (out / "rounds" / "round-000" / "checkpoint").resolve()
    round0 = lmrl.load_run(out / "rounds" / "round-000" / "run")
    round1 = lmrl.load_run(out / "rounds" / "round-001" / "run")
    assert {e.models["agent"] for e in round0} == {f"hosted_vllm/{maze_policy.resolve()}"}
    assert {e.models["agent"] for e in round1} == {f"hosted_vllm/{after0}"}
    assert {str(maze_policy.resolve()), str(after0)} <= served  # the server loaded both
    assert len(round0) == len(round1) == 8 and all(e.error is None for e in round0 + round1)
    # no ids from this server: training tokenized the parsed moves and scored them with the policy
    assert [r["sampled_ids"] for r in log] == [0.0, 0.0] and all(r["steps"] > 0 for r in log)
    assert (out / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rollout-server", "ftp://host/v1"], "not an http(s) URL"),
        (["--rollout-server", "http://127.0.0.1:9/v1"], "cannot reach the rollout server"),
        (["--rollout-server", "http://127.0.0.1:9/v1", "--rollout-sync", "push"], "--rollout-sync"),
        (["--rollout-sync", "post:/reload"], "need --rollout-server"),
        (["--rollout-server", "http://127.0.0.1:9/v1", "--rollout-request", "nokey"], "KEY=VALUE"),
    ],
)
def test_bad_rollout_server_settings_are_one_line_exit_2(args, message, maze_policy, tmp_path, capsys):
    out = tmp_path / "out"
    command = ["train", "--algo", "ppo", "--task", "maze-fo", "--base", str(maze_policy), "--out", str(out)]
    assert main([*command, *args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (out / "rounds").exists()


def test_a_server_that_refuses_the_weights_stops_the_run_in_one_line(maze_policy, tmp_path, capsys) -> None:
    with WeightsServer(maze_policy) as server:
        command = [
            "train", "--algo", "ppo", "--task", "maze-fo", "--base", str(maze_policy), "--out",
            str(tmp_path / "out"), "--rollout-server", server.api_base,
            "--rollout-sync", "post:/no-such-route", "--no-progress",
        ]  # fmt: skip
        assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert "HTTP 404" in err and len(err.splitlines()) == 1, err


def test_a_round_where_every_episode_fails_stops_the_run_in_one_line(maze_policy, tmp_path, capsys) -> None:
    # path sync against a server that serves one fixed name: every request names a path it does not serve
    with WeightsServer(maze_policy) as server:
        command = [
            "train", "--algo", "ppo", "--task", "maze-fo", "--base", str(maze_policy), "--out",
            str(tmp_path / "out"), "--rollout-server", server.api_base, "--episodes-per-round", "4",
            "--max-turns", "3", "--no-progress",
        ]  # fmt: skip
        assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert "round 0: no episode finished (4 failed" in err and "is not served" in err, err
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "out" / "rounds" / "round-000" / "checkpoint").exists()


def test_a_server_that_wants_a_key_gets_it_from_the_environment(maze_policy, tmp_path, capsys, monkeypatch):
    secret = "sk-rollout-secret-123"
    base = [
        "train", "--algo", "ppo", "--task", "maze-fo", "--base", str(maze_policy), "--rounds", "1",
        "--episodes-per-round", "2", "--max-turns", "2", "--rollout-sync", "post:/update_weights_from_disk",
        "--no-progress",
    ]  # fmt: skip
    with WeightsServer(maze_policy, key=secret) as server:
        monkeypatch.delenv("HOSTED_VLLM_API_KEY", raising=False)
        refused = tmp_path / "refused"
        assert main([*base, "--out", str(refused), "--rollout-server", server.api_base]) == 2
        assert "HTTP 401" in capsys.readouterr().err
        monkeypatch.setenv("HOSTED_VLLM_API_KEY", secret)
        out = tmp_path / "out"
        assert main([*base, "--out", str(out), "--rollout-server", server.api_base]) == 0
    assert len(lmrl.load_run(out / "rounds" / "round-000" / "run")) == 2
    written = [f for f in out.rglob("*") if f.is_file() and f.suffix in (".json", ".jsonl", ".txt", ".csv")]
    assert written and not any(secret in f.read_text(errors="replace") for f in written)
