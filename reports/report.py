"""``lmrl report``: summary.csv, episodes.csv, paired.csv and a static HTML report (index.html plus
transcript pages) for any number of run directories and training output directories."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lmrl.reports import plots
from lmrl.reports.html import esc, num, page, table, with_ci
from lmrl.reports.load import Loaded, TrainInfo, load
from lmrl.reports.metrics import compute_metrics, wide
from lmrl.reports.paired import paired_comparisons
from lmrl.reports.paper import METHODS, paper_table2
from lmrl.reports.stats import N_BOOT
from lmrl.reports.transcripts import PER_PAGE, page_name, transcript_dir, write_transcripts


@dataclass
class Report:
    index: Path  # the HTML file to open
    summary: pd.DataFrame  # tidy metrics (summary.csv)
    paired: pd.DataFrame
    loaded: Loaded


def write_report(
    paths: list[Path],
    out: Path,
    seed: int = 0,
    n_boot: int = N_BOOT,
    per_page: int = PER_PAGE,
    log: Callable[[str], None] | None = None,
) -> Report:
    say = log or (lambda _: None)
    loaded = load(paths)
    say(f"loaded {len(loaded.episodes)} episodes from {len(loaded.runs)} run(s)")
    tidy = compute_metrics(loaded.episodes, loaded.anchors, seed, n_boot)
    paired = paired_comparisons(loaded.episodes, seed, n_boot)
    out.mkdir(parents=True, exist_ok=True)
    tidy.to_csv(out / "summary.csv", index=False)
    paired.to_csv(out / "paired.csv", index=False)
    loaded.episodes.drop(columns=["line"]).to_csv(out / "episodes.csv", index=False)
    write_transcripts(loaded, out, per_page)
    say("wrote the transcripts")
    index = out / "index.html"
    index.write_text(render_index(loaded, tidy, paired), encoding="utf-8")
    return Report(index, tidy, paired, loaded)


def render_index(loaded: Loaded, tidy: pd.DataFrame, paired: pd.DataFrame) -> str:
    table_ = wide(tidy)
    sections = [
        "<h1>lmrl report</h1>",
        _notes(loaded),
        "<h2 id='leaderboard'>Leaderboard</h2>",
        "<p>Normalized score (the paper's piecewise formula: min return 0, dataset average 50, max 100) "
        "of the mean return, with its seeded bootstrap 95% interval; ★ best per task. Each score links to "
        "its transcripts. Grey rows: the paper's Table 2, for reference (one training run per cell).</p>",
        _leaderboard(table_),
        _runs(loaded),
    ]
    for task in sorted(table_["task"].unique()) if not table_.empty else []:
        sections.append(_task_section(str(task), table_[table_["task"] == task], paired, loaded))
    if loaded.training:
        sections.append("<h2 id='training'>Training</h2>")
        sections += [_training_section(info, loaded) for info in loaded.training]
    return page("lmrl report", "\n".join(sections))


def _notes(loaded: Loaded) -> str:
    notes = []
    for run in loaded.runs:
        if run.partial:
            notes.append(
                f"{esc(run.path)}: partial run — {run.finished} of {run.planned} episodes finished "
                "(still running or stopped); the report shows what exists."
            )
        if run.errors:
            notes.append(
                f"{esc(run.path)}: {run.errors} episode(s) ended with an error; they are counted as "
                "errored and left out of every statistic."
            )
    if loaded.episodes.empty:
        notes.append("No finished episodes yet.")
    return "".join(f"<p class='note'>{n}</p>" for n in notes)


def _runs(loaded: Loaded) -> str:
    rows = []
    for run in loaded.runs:
        config = run.manifest.get("config", {})
        status = "partial" if run.partial else "complete"
        rows.append(
            [
                esc(run.path),
                esc(status) + (f", {run.errors} errored" if run.errors else ""),
                esc(", ".join(config.get("tasks", []))),
                esc(", ".join(config.get("models", []))),
                f"{run.finished}" + (f" / {run.planned}" if run.planned is not None else ""),
                esc(config.get("seed", "")),
                esc(run.manifest.get("git_revision") or ""),
            ]
        )
    headers = ["run", "status", "tasks", "models", "episodes", "seed", "lmrl revision"]
    return "<h2 id='runs'>Runs</h2>" + table(headers, rows, left=4)


def _link(task: str, model: str) -> str:
    return f"{transcript_dir(task, model)}/{page_name(1)}"


def _best(rows: pd.DataFrame) -> set[str]:
    """Models with the best normalized score of a task (the best mean return where none normalizes)."""
    column = "normalized" if rows["normalized"].notna().any() else "mean_return"
    top = rows[column].max()
    return (
        set() if isinstance(top, float) and math.isnan(top) else set(rows.loc[rows[column] == top, "model"])
    )


def _leaderboard(table_: pd.DataFrame) -> str:
    if table_.empty:
        return (
            "<p>No episodes to rank: the runs given are evaluations during training (see Training; "
            "an online run ranks its last round when it evaluates with --eval-every).</p>"
        )
    tasks = sorted(table_["task"].unique())
    best = {t: _best(table_[table_["task"] == t]) for t in tasks}
    cells = {(r.task, r.model): r for r in table_.itertuples(index=False)}
    rows = []
    for model in sorted(table_["model"].unique()):
        row = [esc(model)]
        for task in tasks:
            r = cells.get((task, model))
            if r is None:
                row.append("")
                continue
            if math.isnan(r.normalized):
                text = "raw " + with_ci(r.mean_return, r.mean_return_low, r.mean_return_high)
            else:
                text = with_ci(r.normalized, r.normalized_low, r.normalized_high, ".1f")
            star = " ★" if model in best[task] else ""
            cls = "best" if star else ""
            row.append(f"<td class='{cls}'><a href='{esc(_link(task, model))}'>{text}</a>{star}</td>")
        rows.append(row)
    paper = paper_table2()
    for method, name in METHODS.items():
        values = [paper.at[t, method] if t in paper.index else math.nan for t in tasks]
        if all(math.isnan(v) for v in values):
            continue
        rows.append(
            ["<td class='l'>paper: " + esc(name) + "</td>", *(f"<td>{num(v, '.1f')}</td>" for v in values)]
        )
    html = table(["model", *map(esc, tasks)], rows)
    # paper rows are told apart by their class (grey, italic)
    return html.replace("<tr><td class='l'>paper: ", "<tr class='paper'><td class='l'>paper: ")


def _task_section(task: str, rows: pd.DataFrame, paired: pd.DataFrame, loaded: Loaded) -> str:
    parts = [f"<h2 id='task-{esc(task)}'>{esc(task)}</h2>"]

    def present(prefix: str) -> list[str]:  # metrics some model of this task has (judges, partner roles)
        return sorted(
            c[len(prefix) :]
            for c in rows.columns
            if c.startswith(prefix) and not c.endswith(("_low", "_high")) and rows[c].notna().any()
        )

    judges = present("judge:")
    roles = present("cost_usd:")
    headers = [
        "model",
        "episodes",
        "errored",
        "truncated (by --max-turns)",
        "mean return",
        "normalized",
        "success",
        "invalid / turn",
        "turns",
        "turns to solve (median, IQR)",
        "tokens in / out",
        "USD agent",
        *(f"USD {esc(r)}" for r in roles),
        *(f"judge {esc(j)} (failures)" for j in judges),
    ]
    body = []
    for d in rows.to_dict("records"):
        reasons = sorted(c for c in d if c.startswith("invalid_rate:") and not c.endswith(("_low", "_high")))
        invalid = with_ci(d["invalid_rate"], d["invalid_rate_low"], d["invalid_rate_high"], ".1%")
        detail = ", ".join(
            f"{esc(c[13:])} {num(d[c], '.1%')}" for c in reasons if d[c] and not math.isnan(d[c])
        )
        solve = "–"
        if not math.isnan(d.get("turns_to_solve_p50", math.nan)):
            iqr = f"{num(d['turns_to_solve_p25'])}–{num(d['turns_to_solve_p75'])}"
            solve = f"{num(d['turns_to_solve_p50'])} <span class='ci'>({iqr})</span>"
        body.append(
            [
                f"<a href='{esc(_link(task, d['model']))}'>{esc(d['model'])}</a>",
                str(int(d["episodes"])),
                num(int(d["errored"]), "d"),
                f"{int(d['truncated'])} ({int(d['cut_by_max_turns'])})",
                with_ci(d["mean_return"], d["mean_return_low"], d["mean_return_high"]),
                with_ci(d["normalized"], d["normalized_low"], d["normalized_high"], ".1f"),
                with_ci(d["success_rate"], d["success_rate_low"], d["success_rate_high"], ".1%"),
                invalid + (f"<br><span class='ci'>{detail}</span>" if detail else ""),
                with_ci(d["mean_turns"], d["mean_turns_low"], d["mean_turns_high"]),
                solve,
                f"{int(d['tokens_in']):,} / {int(d['tokens_out']):,}",
                num(d["cost_usd"], ".4g"),
                *(num(d.get(f"cost_usd:{role}", math.nan), ".4g") for role in roles),
                *(
                    with_ci(
                        d.get(f"judge:{j}", math.nan),
                        d.get(f"judge:{j}_low", math.nan),
                        d.get(f"judge:{j}_high", math.nan),
                    )
                    + f" ({int(d.get(f'judge_failures:{j}', 0) or 0)})"
                    for j in judges
                ),
            ]
        )
    parts.append(table(headers, body))
    pairs = paired[paired["task"] == task]
    if not pairs.empty:
        parts.append(
            "<h3>Paired comparisons (shared episodes only)</h3><p class='meta'>A − B mean return over the "
            "episodes both played (same index, epoch and seed), bootstrap 95% interval, p-value of a paired "
            "sign-flip test.</p>"
        )
        prow = [
            [
                esc(p.model_a),
                esc(p.model_b),
                str(p.shared),
                num(p.mean_a),
                num(p.mean_b),
                with_ci(p.diff, p.ci_low, p.ci_high),
                f"<b>{num(p.p_value, '.3g')}</b>" if p.p_value < 0.05 else num(p.p_value, ".3g"),
                f"{p.a_better} / {p.ties} / {p.b_better}",
            ]
            for p in pairs.itertuples(index=False)
        ]
        parts.append(
            table(
                ["A", "B", "shared", "mean A", "mean B", "A − B", "p", "A better / tie / B better"],
                prow,
                left=2,
            )
        )
    ok = loaded.episodes[
        (loaded.episodes["task"] == task) & ~loaded.episodes["errored"] & ~loaded.episodes["step_eval"]
    ]
    figures = [
        plots.return_distribution(task, ok),
        plots.turns_to_solve(task, ok),
        plots.cost_vs_score(task, rows),
    ]
    parts.append("<div class='plots'>" + "".join(f"<div>{svg}</div>" for svg in figures if svg) + "</div>")
    return "\n".join(parts)


def learning_curve(info: TrainInfo, loaded: Loaded, seed: int = 0, n_boot: int = N_BOOT) -> pd.DataFrame:
    """Evaluation score per step: recomputed from the evaluation runs (with intervals) when they are
    there, else taken from the training log."""
    rows = []
    metric = "normalized"
    for step, run_number in info.steps:
        frame = loaded.episodes[loaded.episodes["run"] == run_number].assign(step_eval=False)
        tidy = compute_metrics(frame, loaded.anchors, seed, n_boot)
        chosen = tidy[tidy["metric"] == "normalized"]
        if chosen.empty or chosen["value"].isna().all():
            metric = "mean_return"
            chosen = tidy[tidy["metric"] == "mean_return"]
        for r in chosen.itertuples(index=False):
            rows.append({"step": step, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high})
    if not rows and "eval.normalized" in info.log:
        logged = info.log[info.log["eval.normalized"].notna()]
        for step, value in zip(logged["step"], logged["eval.normalized"], strict=True):
            rows.append({"step": step, "value": value, "ci_low": math.nan, "ci_high": math.nan})
    curve = pd.DataFrame(rows, columns=["step", "value", "ci_low", "ci_high"]).sort_values("step")
    curve.attrs["metric"] = "normalized score" if metric == "normalized" else "mean return"
    return curve


def _training_section(info: TrainInfo, loaded: Loaded) -> str:
    algo = info.config.get("algo", "")
    title = f"{info.path.name} ({algo})" if algo else info.path.name
    curve = learning_curve(info, loaded)
    parts = [f"<h3>{esc(info.path)}{' · ' + esc(algo) if algo else ''}</h3>"]
    if curve.empty:
        parts.append("<p class='meta'>No evaluations during training (--eval-episodes 0): loss only.</p>")
    parts.append("<div class='plots'>" + plots.learning_curve(title, info.log, curve) + "</div>")
    return "".join(parts)
