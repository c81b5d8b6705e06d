"""Options that are true: each reaches the agent it names and only it, or the run refuses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lmrl.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def model(name: str, text: str) -> str:
    return f"openai/say@text={text}@id={name}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--model", "scripted/random", "--temperature", "0"], "--temperature"),
        (["--model", "scripted/random", "--top-p", "0.5"], "--top-p"),
        (["--model", "scripted/random", "--stop", "x"], "--stop"),
        (["--model", "scripted/random", "--device", "cpu"], "--device"),
        (["--model", "openai/gpt-4o-mini", "--device", "cpu"], "--device"),
        (["--model", "openai/gpt-4o-mini", "--local-option", "top_k=3"], "--local-option top_k"),
        (
            ["--model", "scripted/random", "--model-option", "reasoning_effort=low"],
            "--model-option reasoning_effort",
        ),
    ],
)
def test_an_option_no_model_takes_exits_2_naming_it(args, flag, tmp_path, capsys) -> None:
    code = main(["run", "--task", "maze-fo", *args, "--episodes", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert f"{flag} does not apply" in err
    assert not (tmp_path / "r").exists()


def test_role_and_judge_options_are_checked_against_their_own_agents(tmp_path, capsys) -> None:
    base = ["run", "--task", "twenty-questions", "--model", "scripted/random", "--episodes", "1"]
    assert main([*base, "--role-option", "oracle.temperature=0", "--out", str(tmp_path / "a")]) == 2
    assert "does not apply to role oracle (scripted/kb-oracle)" in capsys.readouterr().err
    assert main([*base, "--role-option", "buyer.temperature=0", "--out", str(tmp_path / "b")]) == 2
    assert "no task in this run has that role" in capsys.readouterr().err
    judge = ["--judge", "invalid-rate", "--judge-option", "invalid-rate.temperature=0"]
    assert main([*base, *judge, "--out", str(tmp_path / "c")]) == 2
    assert "rule judge and takes no options" in capsys.readouterr().err


def test_partner_and_judge_get_their_own_options_and_endpoint(
    fake_server, second_fake_server, tmp_path
) -> None:
    """The agent's sampling options and endpoint reach the agent only; the oracle and the judge are
    served by a second server with the options given to them, and never inherit the agent's."""
    agent = model("agent", "Question: Is it an animal?")
    oracle = model("oracle", "No.")
    judge = model("judge", "Score: 4 Rationale: fine")
    code = main(
        [
            "run", "--task", "twenty-questions", "--model", agent, "--episodes", "2", "--max-turns", "3",
            "--api-base", fake_server.api_base, "--temperature", "0.3", "--top-p", "0.7", "--stop", "END",
            "--max-tokens", "50", "--model-option", "reasoning_effort=low",
            "--role", f"oracle={oracle}",
            "--role-option", f"oracle.api_base={second_fake_server.api_base}",
            "--role-option", "oracle.temperature=0.9",
            "--judge", f"agent-quality={judge}",
            "--judge-option", f"agent-quality.api_base={second_fake_server.api_base}",
            "--judge-option", "agent-quality.max_tokens=7",
            "--out", str(tmp_path / "run"), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0

    def seen(server, spec: str) -> list[dict]:
        return [r["params"] for r in server.requests() if r["model"] == spec.removeprefix("openai/")]

    agent_calls, oracle_calls, judge_calls = (
        seen(fake_server, agent),
        seen(second_fake_server, oracle),
        seen(second_fake_server, judge),
    )
    assert len(agent_calls) == 6 and len(oracle_calls) == 6 and len(judge_calls) == 2
    assert not seen(second_fake_server, agent) and not seen(fake_server, oracle) + seen(fake_server, judge)
    for params in agent_calls:
        assert params["temperature"] == 0.3 and params["top_p"] == 0.7 and params["stop"] == ["END"]
        assert params["max_tokens"] == 50 and params["reasoning_effort"] == "low"
    for params in oracle_calls:
        assert params["temperature"] == 0.9
        assert not {"top_p", "stop", "max_tokens", "reasoning_effort"} & set(params)
    for params in judge_calls:
        assert params["max_tokens"] == 7
        assert not {"temperature", "top_p", "stop", "reasoning_effort"} & set(params)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["models"][agent]["sent"] == {
        "temperature": 0.3,
        "max_tokens": 50,
        "top_p": 0.7,
        "stop": ["END"],
        "reasoning_effort": "low",
    }
    assert manifest["roles"][f"oracle={oracle}"]["sent"] == {"temperature": 0.9}
    assert manifest["roles"][f"oracle={oracle}"]["api_base"] == second_fake_server.api_base


def test_a_run_where_every_episode_failed_exits_1(fake_server, tmp_path, capsys) -> None:
    failing = f"openai/say@fail=500x1000@id={uuid.uuid4().hex[:8]}"
    args = ["run", "--task", "maze-fo", "--model", failing, "--episodes", "3", "--max-retries", "0"]
    code = main([*args, "--api-base", fake_server.api_base, "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 1
    assert "every episode played in this invocation failed (3)" in capsys.readouterr().err


def test_importing_lmrl_changes_no_environment_variable() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("LITELLM_LOCAL_MODEL_COST_MAP", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "OMP_WAIT_POLICY")
    }
    code = (
        "import os; before = dict(os.environ)\n"
        "import lmrl, lmrl.cli, lmrl.runner, lmrl.tasks, lmrl.agents.local, reports\n"
        "from lmrl.agents.litellm_agent import _litellm; _litellm()\n"
        "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
        "assert not changed, changed"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_version_and_one_line_errors(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("lmrl 0.")
    assert main(["run", "--task", "maze-fo", "--model", "scripted/random", "--episodes", "2",
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["show", str(tmp_path / "r"), "--csv", str(tmp_path / "missing" / "dir" / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmrl: error: cannot write") and "\n" not in err


def test_every_option_has_help() -> None:
    parser = build_parser()
    missing = []
    for sub in parser._subparsers._group_actions[0].choices.values():  # type: ignore[union-attr]
        for action in sub._actions:
            if not action.help and action.dest != "help":
                missing.append(f"{sub.prog} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing
