"""Budgets: a run-wide --max-cost (agent, partners and judges, across invocations), per-episode token
and time limits that cut episodes as truncated, and --fail-on-error; a run stopped by one exits 3 and
resumes when rerun."""

from __future__ import annotations

import json
import uuid

import litellm

from lmrl.cli import main
from lmrl.rundir import read_records

PRICE = {"input_cost_per_token": 1e-5, "output_cost_per_token": 1e-5, "litellm_provider": "openai"}


def _model(brain: str = "maze", price: bool = False) -> str:
    name = f"{brain}@id={uuid.uuid4().hex[:8]}"
    if price:
        litellm.register_model({name: PRICE})
    return f"openai/{name}"


def _args(out, model, api_base, *extra) -> list[str]:
    return [
        "run", "--task", "maze-fo", "--model", model, "--api-base", api_base, "--transport", "litellm",
        "--episodes", "20", "--max-turns", "3", "--concurrency", "2", "--out", str(out), "--no-progress",
        *extra,
    ]  # fmt: skip


def test_max_cost_stops_at_the_budget_and_the_rerun_refuses_to_exceed_it(fake_server, tmp_path, capsys):
    model = _model(price=True)
    out = tmp_path / "run"
    assert main(_args(out, model, fake_server.api_base, "--max-cost", "0.05")) == 3
    err = capsys.readouterr().err
    assert "stopped by --max-cost 0.05" in err
    manifest = json.loads((out / "manifest.json").read_text())
    spent = manifest["invocations"][-1]["spent_usd"]
    per_call = max(r["cost_usd"] / r["length"] for r in read_records(out / "episodes.jsonl"))
    assert 0.05 <= spent <= 0.05 + 2 * per_call  # over by at most the calls in flight (concurrency 2)
    logged = len(read_records(out / "episodes.jsonl"))
    assert 0 < logged < 20
    before = len(fake_server.requests())
    assert main(_args(out, model, fake_server.api_base, "--max-cost", "0.05")) == 3
    assert "has spent" in capsys.readouterr().err
    assert len(fake_server.requests()) == before  # refused before any call
    assert main(_args(out, model, fake_server.api_base, "--max-cost", "10")) == 0
    keys = [r["key"] for r in map(json.loads, (out / "episodes.jsonl").read_text().splitlines())]
    assert len(keys) == len(set(keys)) == 20
    manifest = json.loads((out / "manifest.json").read_text())
    # the refused rerun played nothing and left no record; the last one spent the rest
    assert len(manifest["invocations"]) == 2 and manifest["invocations"][1]["spent_usd"] > 0


def test_per_episode_limits_cut_episodes_as_truncated_with_the_reason(fake_server, tmp_path):
    out = tmp_path / "tokens"
    assert main(_args(out, _model(), fake_server.api_base, "--max-episode-tokens", "1")) == 0
    records = read_records(out / "episodes.jsonl")
    assert records and all(r["length"] == 1 or r["terminated"] for r in records)
    cut = [r for r in records if r["info"].get("cut_by") == "max_episode_tokens"]
    assert cut and all(r["truncated"] and not r["terminated"] and r["turns"][-1]["truncated"] for r in cut)
    slow = tmp_path / "seconds"
    # each call takes 1 s: the first ends inside the 1.5 s limit even on a slow machine, the second is cut
    model = _model("maze@delay=1.0")
    args = _args(slow, model, fake_server.api_base, "--max-episode-seconds", "1.5", "--episodes", "2")
    assert main(args) == 0
    for record in read_records(slow / "episodes.jsonl"):
        assert record["info"]["cut_by"] == "max_episode_seconds" and record["truncated"]
        assert record["length"] == 1 and record["error"] is None  # the second call was cut mid-way


def test_fail_on_error_stops_the_run(fake_server, tmp_path, capsys):
    out = tmp_path / "errors"
    model = _model("maze@fail=500x1000")
    args = _args(out, model, fake_server.api_base, "--max-retries", "0", "--fail-on-error", "3")
    assert main(args) == 3
    assert "--fail-on-error 3: 3 of 3 episodes" in capsys.readouterr().err
    assert len(read_records(out / "episodes.jsonl")) <= 4  # the other worker's episode may land too
