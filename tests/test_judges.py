"""Rule and LLM judges: scoring during a run, failures recorded, `lmrl score` re-scoring with a cache."""

from __future__ import annotations

import uuid

import pytest

from lmrl.agents import AgentConfigError, AgentOptions
from lmrl.cli import main
from lmrl.judges import JudgeParseError, make_judge, parse_score
from lmrl.judges.rescore import agreement
from lmrl.rundir import load_episodes


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Score: 4\nRationale: tidy play", (4.0, "tidy play")),
        ("**Score:** 3/5 — Rationale - wanders", (3.0, "wanders")),
        ("I would give this 2/5.", (2.0, None)),
        ("score = 5", (5.0, None)),
    ],
)
def test_parse_score(reply, expected):
    assert parse_score(reply, 1, 5) == expected


@pytest.mark.parametrize("reply", ["Great job!", "Score: 9", "Score: 4/10", ""])
def test_parse_score_rejects_garbage(reply):
    with pytest.raises(JudgeParseError):
        parse_score(reply, 1, 5)


def test_judge_specs():
    assert make_judge("invalid-rate").key == "invalid-rate"
    judge = make_judge("agent-quality=openai/x", AgentOptions(api_base="http://127.0.0.1:9/v1"))
    assert judge.key == "agent-quality=openai/x"
    with pytest.raises(AgentConfigError, match="name its model"):
        make_judge("agent-quality")
    with pytest.raises(AgentConfigError, match="unknown judge"):
        make_judge("vibes")


def test_agreement():
    a = [("k1", 1.0), ("k2", 3.0), ("k3", 5.0)]
    b = [("k1", 2.0), ("k2", 3.0), ("k3", 5.0), ("k4", 1.0)]
    result = agreement(a, b)
    assert result["n"] == 3 and result["exact"] == pytest.approx(2 / 3)
    assert result["mean_abs_diff"] == pytest.approx(1 / 3) and 0.9 < result["pearson"] <= 1


def judge_model(text: str) -> str:
    return f"openai/say@text={text}@id={uuid.uuid4().hex[:8]}"


def test_judging_during_a_run_records_scores_and_failures(fake_server, tmp_path):
    import litellm

    good, garbage = judge_model("Score: 4 Rationale: fine"), judge_model("What a lovely game.")
    for spec in (good, garbage):  # priced, so that the judge's cost is recorded (and shown in reports)
        price = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
        litellm.register_model({spec.removeprefix("openai/"): {**price, "litellm_provider": "openai"}})
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--task",
            "maze-fo",
            "--model",
            "scripted/optimal",
            "--episodes",
            "3",
            "--out",
            str(out),
            "--judge-option",
            f"agent-quality.api_base={fake_server.api_base}",
            "--judge-option",
            "agent-quality.max_retries=0",
            "--no-progress",
            "--judge",
            "invalid-rate",
            "--judge",
            f"agent-quality={good}",
            "--judge",
            f"agent-quality={garbage}",
        ]
    )
    assert code == 0
    for episode in load_episodes(out):
        assert episode.error is None
        assert episode.judges["invalid-rate"] == {"score": 0.0}
        assert episode.judges[f"agent-quality={good}"]["score"] == 4.0
        failed = episode.judges[f"agent-quality={garbage}"]
        assert failed["score"] is None and "no score" in failed["error"]
        # Each judgment records what its call cost, a failed one too (the reply was paid for).
        assert episode.judges[f"agent-quality={good}"]["cost_usd"] > 0 and failed["cost_usd"] > 0
        assert "cost_usd" not in episode.judges["invalid-rate"]  # a rule judge costs nothing


def test_lmrl_score_rescores_without_replaying_and_caches(fake_server, tmp_path, capsys):
    out = tmp_path / "run"
    agent = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    assert (
        main(
            [
                "run",
                "--task",
                "maze-fo",
                "--model",
                agent,
                "--episodes",
                "4",
                "--out",
                str(out),
                "--api-base",
                fake_server.api_base,
                "--no-progress",
            ]
        )
        == 0
    )
    agent_calls = sum(r["model"] == agent.removeprefix("openai/") for r in fake_server.requests())
    first, second = judge_model("Score: 5"), judge_model("Score: 4")
    args = [
        "score",
        str(out),
        "--judge",
        f"agent-quality={first}",
        "--judge",
        f"agent-quality={second}",
        "--api-base",
        fake_server.api_base,
    ]
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "scored 8, cached 0, errors 0" in printed and "agreement" in printed and "n=4" in printed
    seen = fake_server.requests()
    assert sum(r["model"] == agent.removeprefix("openai/") for r in seen) == agent_calls  # no replay
    assert sum(r["model"] == first.removeprefix("openai/") for r in seen) == 4
    episodes = load_episodes(out)
    assert {e.judges[f"agent-quality={first}"]["score"] for e in episodes} == {5.0}
    assert main(args) == 0  # everything cached: no new judge calls
    assert "scored 0, cached 8" in capsys.readouterr().out
    assert len(fake_server.requests()) == len(seen)


def test_show_reports_judge_means(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--task",
                "maze-fo",
                "--model",
                "scripted/random",
                "--episodes",
                "4",
                "--out",
                str(out),
                "--judge",
                "invalid-rate",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["show", str(out), "--csv", str(tmp_path / "t.csv")]) == 0
    assert "judge:invalid-rate" in capsys.readouterr().out
    import pandas as pd

    assert pd.read_csv(tmp_path / "t.csv")["judge:invalid-rate"].iloc[0] == 0.0


def test_task_rule_judges_on_dialogue_runs(tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--task",
            "twenty-questions",
            "--task",
            "guess-my-city",
            "--task",
            "car-dealer",
            "--model",
            "scripted/behavior",
            "--episodes",
            "12",
            "--out",
            str(out),
            "--no-progress",
            "--judge",
            "correct-guess",
            "--judge",
            "city-leakage",
            "--judge",
            "sale-price",
        ]
    )
    assert code == 0
    episodes = load_episodes(out)
    for episode in episodes:
        scored = episode.judges
        if episode.task == "car-dealer":
            assert set(scored) == {"sale-price"}
            expected = episode.info["price"] if episode.info["decision"] == "accepted" else None
            assert scored["sale-price"]["score"] == expected
        else:
            assert scored["correct-guess"]["score"] >= float(episode.success)
            assert ("city-leakage" in scored) == (episode.task == "guess-my-city")
            if episode.task == "guess-my-city":
                assert scored["city-leakage"]["score"] == 0  # the built-in oracle never leaks
    assert any(e.success for e in episodes if e.task != "car-dealer")
