"""lmrl.reports: numbers in summary.csv against hand computation, normalization spot checks against the
paper, interval coverage, paired comparisons on shared episodes only, escaping, partial runs, training
outputs, typed exports and the messages format."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lmrl.cli import main
from lmrl.episode import Episode, Turn, episode_key
from lmrl.reports import bootstrap_mean, compute_metrics, load, paired_comparisons, shared_episodes
from lmrl.reports.normalize import normalized_score
from lmrl.reports.report import write_report
from lmrl.rollout import derive_seed
from lmrl.tasks import task_class

HOSTILE = (
    "<script>alert('x')</script></textarea><textarea>&amp; &lt;b&gt; "
    '<a href="javascript:alert(1)">click</a><img src=x onerror=alert(2)>'
)


def episode(
    task: str,
    model: str,
    index: int,
    rewards: list[float],
    *,
    epoch: int = 0,
    run_seed: int = 0,
    success: bool = False,
    invalid: dict[int, str] | None = None,
    truncated: bool = False,
    error: str | None = None,
    cost: float = 0.0,
    judges: dict[str, dict[str, Any]] | None = None,
    text: str = "move up",
    info: dict[str, Any] | None = None,
    roles: dict[str, str] | None = None,
) -> Episode:
    """An episode record as the runner writes it (rewards per turn; ``invalid`` turn -> reason)."""
    record = Episode(
        run_id="fixture",
        key=episode_key(task, model, index, epoch),
        task=task,
        task_version="1",
        index=index,
        epoch=epoch,
        seed=derive_seed(run_seed, task, index, epoch),
        models={"agent": model, **(roles or {})},
        judges=judges or {},
        info=info or {},
        prompt_id="p1",
    )
    for i, reward in enumerate(rewards):
        last = i == len(rewards) - 1
        reason = (invalid or {}).get(i)
        record.add_turn(
            Turn(
                observation=f"observation {i}",
                raw_output=text,
                action=None if reason else text,
                invalid=reason is not None,
                invalid_reason=reason,
                reward=reward,
                done=last and error is None,
                terminated=last and not truncated and error is None,
                truncated=last and truncated,
                cost_usd=cost / len(rewards),
                info={"position": [i, i]},
            )
        )
    record.success = success
    record.error = error
    record.final_observation = "the end"
    return record


def make_run(
    path: Path,
    episodes: list[Episode],
    *,
    planned: int | None = None,
    run_seed: int = 0,
    torn_tail: bool = False,
) -> Path:
    """A run directory: manifest (with the tasks' real anchors), prompts ledger and episodes log."""
    path.mkdir(parents=True)
    tasks = sorted({e.task for e in episodes})
    models = sorted({e.models["agent"] for e in episodes})
    per = planned or max(1, len(episodes) // max(1, len(tasks) * len(models)))
    manifest = {
        "run_id": path.name,
        "config": {"tasks": tasks, "models": models, "episodes": per, "epochs": 1, "seed": run_seed},
        "tasks": {t: {"anchors": asdict(task_class(t).anchors)} for t in tasks},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "prompts.json").write_text(json.dumps({"prompts": {"p1": {"text": f"rules {HOSTILE}"}}}))
    with (path / "episodes.jsonl").open("w") as handle:
        for e in episodes:
            e.run_id = path.name
            handle.write(e.to_json() + "\n")
        if torn_tail:
            handle.write('{"run_id": "torn')
    return path


def metric(tidy: pd.DataFrame, task: str, model: str, name: str) -> pd.Series:
    return tidy[(tidy.task == task) & (tidy.model == model) & (tidy.metric == name)].iloc[0]


def test_summary_csv_equals_hand_computed_numbers(tmp_path):
    a = "scripted/a"
    episodes = [
        episode("maze-fo", a, 0, [-1.0] * 10, success=True, invalid={2: "no-action"}, cost=0.5),
        episode("maze-fo", a, 1, [-1.0] * 20, success=True, cost=0.25),
        episode("maze-fo", a, 2, [-1.0] * 30, truncated=True, invalid={0: "illegal", 1: "illegal"}),
        episode("maze-fo", a, 3, [-1.0] * 3, error="RateLimitError: boom", cost=0.125),
    ]
    run = make_run(tmp_path / "run", episodes)
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    m = summary.set_index("metric")
    assert m.at["episodes", "value"] == 3 and m.at["errored", "value"] == 1  # the failure is apart
    assert m.at["truncated", "value"] == 1 and m.at["cut_by_max_turns", "value"] == 0
    assert m.at["mean_return", "value"] == pytest.approx(-20.0)  # (-10 - 20 - 30) / 3
    assert m.at["normalized", "value"] == pytest.approx(50 + 50 * (-20 + 83) / (-6.84 + 83))
    assert m.at["success_rate", "value"] == pytest.approx(2 / 3)
    assert m.at["invalid_rate", "value"] == pytest.approx(3 / 60)  # invalid turns / turns
    assert m.at["invalid_rate:illegal", "value"] == pytest.approx(2 / 60)
    assert m.at["invalid_rate:no-action", "value"] == pytest.approx(1 / 60)
    assert m.at["turns_to_solve", "value"] == pytest.approx(15.0)
    assert m.at["mean_turns", "value"] == pytest.approx(20.0)
    assert m.at["cost_usd", "value"] == pytest.approx(0.875)  # the failed episode was paid for too
    low, high = m.at["mean_return", "ci_low"], m.at["mean_return", "ci_high"]
    assert -30 <= low < -20 < high <= -10
    # the normalized interval is the normalized interval of the mean (normalization is increasing)
    assert m.at["normalized", "ci_low"] == pytest.approx(normalized_score(low, -101, -83, -6.84))
    frame = pd.read_csv(tmp_path / "report" / "episodes.csv")
    assert len(frame) == 4 and frame["errored"].sum() == 1 and frame["truncated"].sum() == 1
    assert frame.loc[frame["errored"], "truncated"].eq(False).all()


@pytest.mark.parametrize(
    ("task", "raw", "printed"),
    [
        ("maze-fo", -6.97, 99.9),
        ("wordle", -2.04, 97.7),
        ("endgames", 0.814, 77.5),
        ("twenty-questions", -13.0, 95.7),
    ],
)
def test_normalization_spot_checks_against_the_paper(task, raw, printed, tmp_path):
    # two episodes whose mean is the paper's raw score: their summary row must print the paper's number
    episodes = [
        episode(task, "m", 0, [raw - 0.5], success=True),
        episode(task, "m", 1, [raw + 0.5], success=True),
    ]
    run = make_run(tmp_path / "run", episodes)
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 0
    summary = pd.read_csv(tmp_path / "r" / "summary.csv").set_index("metric")
    assert summary.at["normalized", "value"] == pytest.approx(printed, abs=0.06)


def test_bootstrap_interval_covers_the_mean_about_95_percent():
    rng = np.random.default_rng(7)
    hits = 0
    trials = 400
    for trial in range(trials):
        values = rng.normal(3.0, 2.0, size=40)
        _, low, high = bootstrap_mean(values, seed=trial, n_boot=1000)
        hits += low <= 3.0 <= high
    assert 0.91 <= hits / trials <= 0.98


def test_epochs_are_resampled_together():
    """20 items x 5 epochs with a strong item effect: an interval that resampled epochs as if they were
    independent would cover far less than 95%; resampling items keeps it near 95%."""
    rng = np.random.default_rng(3)
    clustered = naive = 0
    trials = 300
    for trial in range(trials):
        item = np.repeat(rng.normal(0, 2.0, size=20), 5)
        values = item + rng.normal(0, 0.5, size=100)
        index = np.repeat(np.arange(20), 5)
        _, low, high = bootstrap_mean(values, index, seed=trial, n_boot=1000)
        clustered += low <= 0 <= high
        _, low, high = bootstrap_mean(values, None, seed=trial, n_boot=1000)
        naive += low <= 0 <= high
    assert clustered / trials >= 0.89 and naive / trials < 0.7


def test_intervals_are_seeded_and_reproducible(tmp_path):
    episodes = [episode("wordle", "m", i, [-float(i % 5)]) for i in range(30)]
    loaded = load([make_run(tmp_path / "run", episodes)])
    first = compute_metrics(loaded.episodes, loaded.anchors, seed=1)
    assert first.equals(compute_metrics(loaded.episodes, loaded.anchors, seed=1))
    other = compute_metrics(loaded.episodes, loaded.anchors, seed=2)
    assert not first["ci_low"].fillna(0).equals(other["ci_low"].fillna(0))


def test_paired_comparison_uses_shared_episodes_only(tmp_path):
    a, b = "scripted/a", "scripted/b"
    episodes = [episode("maze-fo", a, i, [-10.0 - i]) for i in range(10)]  # indices 0..9
    episodes += [episode("maze-fo", b, i, [-12.0 - i]) for i in range(5, 15)]  # indices 5..14
    episodes.append(episode("maze-fo", b, 20, [1000.0]))  # unshared, would swamp the means
    episodes[6] = episode("maze-fo", a, 6, [-16.0], error="boom")  # errored: its pair drops out
    loaded = load([make_run(tmp_path / "run", episodes)])
    pairs = shared_episodes(loaded.episodes, "maze-fo", a, b)
    assert sorted(pairs["index"]) == [5, 7, 8, 9]
    row = paired_comparisons(loaded.episodes).iloc[0]
    assert (row["model_a"], row["model_b"], row["shared"]) == (a, b, 4)
    assert row["diff"] == pytest.approx(2.0) and row["a_better"] == 4
    assert row["mean_b"] == pytest.approx(-12.0 - 7.25)
    # another run seed plays other episodes: nothing is shared with it
    other = [episode("maze-fo", "scripted/c", i, [-5.0], run_seed=9) for i in range(5)]
    loaded = load([tmp_path / "run", make_run(tmp_path / "other", other, run_seed=9)])
    compared = paired_comparisons(loaded.episodes)
    assert not (compared[["model_a", "model_b"]] == "scripted/c").any().any()


def test_paired_test_separates_a_real_difference_from_none(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(0, 5, size=40)
    episodes = [episode("wordle", "x", i, [base[i] + 1.0]) for i in range(40)]
    episodes += [episode("wordle", "y", i, [base[i] + rng.normal(0, 0.3)]) for i in range(40)]
    episodes += [episode("wordle", "z", i, [base[i] + rng.normal(0, 0.3)]) for i in range(40)]
    loaded = load([make_run(tmp_path / "run", episodes)])
    rows = paired_comparisons(loaded.episodes).set_index(["model_a", "model_b"])
    assert rows.at[("x", "y"), "p_value"] < 0.01 and rows.at[("x", "y"), "ci_low"] > 0
    assert rows.at[("y", "z"), "p_value"] > 0.01


def test_hostile_transcript_text_is_escaped_everywhere(tmp_path):
    episodes = [
        episode(
            "twenty-questions",
            "scripted/<b>bold</b>",
            i,
            [-1.0],
            text=HOSTILE,
            judges={"agent-quality": {"score": 3.0, "rationale": HOSTILE}},
            info={"secret": HOSTILE},
            roles={"oracle": "scripted/kb-oracle"},
        )
        for i in range(3)
    ]
    report = write_report([make_run(tmp_path / "run", episodes)], tmp_path / "r")
    pages = [report.index, *sorted((tmp_path / "r" / "transcripts").rglob("*.html"))]
    assert len(pages) == 2
    for path in pages:
        text = path.read_text()
        assert not re.search(r"<script|<textarea|<img|href=[\"']?javascript", text, re.I)
        assert "Content-Security-Policy" in text
    transcript = pages[1].read_text()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;/textarea&gt;" in transcript
    assert "&amp;amp; &amp;lt;b&amp;gt;" in transcript  # entities shown as typed, not decoded
    assert "turn 1 · environment / oracle" in transcript and "judge agent-quality" in transcript


def test_partial_and_errored_runs_are_reported_with_a_note(tmp_path, capsys):
    episodes = [episode("maze-fo", "m", i, [-20.0]) for i in range(3)]
    episodes.append(episode("maze-fo", "m", 3, [-1.0], error="boom"))
    run = make_run(tmp_path / "run", episodes, planned=10, torn_tail=True)
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "partial: 4 of 10" in out and out.strip().endswith("index.html")
    index = (tmp_path / "r" / "index.html").read_text()
    assert "partial run — 4 of 10 episodes finished" in index and "1 episode(s) ended with an error" in index
    assert main(["show", str(run)]) == 0
    assert "partial" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["report", "show", "export"])
def test_a_path_that_is_not_a_run_is_one_line_and_exit_2(command, tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    args = [command, str(tmp_path / "plain")] + (
        ["--out", str(tmp_path / "r")] if command == "report" else []
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an lmrl run directory" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_training_output_gives_learning_curves_and_its_final_evaluation(tmp_path):
    train = tmp_path / "train"
    model = f"local/{train}"
    for step, ret in ((10, -60.0), (20, -30.0)):
        checkpoint = f"local/{train}/evals/step-{step}/checkpoint"
        make_run(
            train / "evals" / f"step-{step}" / "run",
            [episode("maze-fo", checkpoint, i, [ret]) for i in range(4)],
        )
    make_run(train / "evals" / "final", [episode("maze-fo", model, i, [-10.0 - i]) for i in range(4)])
    log = [{"step": s, "loss": 1.0 / s} for s in (5, 10, 15, 20, 25)]
    log.append({"step": 25, "checkpoint": str(train), "eval": {"normalized": 90.0}})
    (train / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (train / "train_config.json").write_text(json.dumps({"algo": "ilql"}))
    report = write_report([train], tmp_path / "r")
    assert sorted(report.summary["model"].unique()) == [f"local/{train.parts[-2]}/{train.name}"]
    index = report.index.read_text()
    assert (
        "Training" in index and "ilql" in index and index.count("<svg") == 3
    )  # returns, cost vs score, the curves
    from lmrl.reports.report import learning_curve

    curve = learning_curve(report.loaded.training[0], report.loaded)
    assert list(curve["step"]) == [10, 20, 25]
    assert curve["value"].iloc[0] == pytest.approx(normalized_score(-60, -101, -83, -6.84))


def test_judges_that_failed_everywhere_keep_their_column(tmp_path):
    failing = {"agent-quality": {"score": None, "error": "APIConnectionError: refused"}}
    scored = {"agent-quality": {"score": 4.0}}
    episodes = [episode("wordle", "m", i, [-3.0], judges=failing) for i in range(3)]
    episodes += [episode("wordle", "n", i, [-3.0], judges=scored if i else failing) for i in range(3)]
    loaded = load([make_run(tmp_path / "run", episodes)])
    assert "judge:agent-quality" in loaded.episodes and loaded.episodes["judge:agent-quality"].dtype == float
    tidy = compute_metrics(loaded.episodes, loaded.anchors)
    assert metric(tidy, "wordle", "m", "judge_failures:agent-quality")["value"] == 3
    assert math.isnan(metric(tidy, "wordle", "m", "judge:agent-quality")["value"])
    assert metric(tidy, "wordle", "n", "judge:agent-quality")["value"] == 4.0
    assert metric(tidy, "wordle", "n", "judge_failures:agent-quality")["value"] == 1


def test_parquet_columns_are_typed_and_fresh_after_score(tmp_path, capsys):
    out = tmp_path / "run"
    run = ["run", "--task", "maze-fo", "--model", "scripted/random", "--episodes", "3", "--out", str(out)]
    assert main([*run, "--no-progress"]) == 0
    assert main(["score", str(out), "--judge", "invalid-rate"]) == 0
    frame = pd.read_parquet(out / "episodes.parquet")
    assert frame["judge:invalid-rate"].notna().all()  # lmrl score rewrote the tables
    assert "judges" not in frame and "info" not in frame
    assert frame["info.start"].map(len).eq(2).all() and frame["info.goal"].map(len).eq(2).all()  # lists
    turns = pd.read_parquet(out / "turns.parquet")
    assert turns["info.steps"].dtype == "int64"
    judges = pd.read_parquet(out / "judges.parquet")
    assert set(judges["judge"]) == {"invalid-rate"} and len(judges) == 3


def test_messages_export_loads_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")  # in the dev extra
    episodes = [
        episode("wordle", "m", 0, [-1.0, 0.0], success=True, invalid={0: "not-a-word"}),
        episode("wordle", "m", 1, [-1.0, -1.0, -1.0], error="boom"),
    ]
    run = make_run(tmp_path / "run", episodes)
    assert main(["export", str(run), "--format", "messages", "--out", str(tmp_path / "chat.jsonl")]) == 0
    data = datasets.load_dataset("json", data_files=str(tmp_path / "chat.jsonl"), split="train")
    assert len(data) == 2
    first = data[0]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert first["messages"][0]["content"].startswith("rules <script>")  # raw text: it is data here
    assert first["rewards"] == [-1.0, 0.0] and first["invalid"] == [True, False]
    assert first["success"] is True and data[1]["error"] == "boom"
