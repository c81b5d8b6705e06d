"""The learning benchmark's output: the table of finished runs (``learning.csv``, ``learning.md``; the
rows of every invocation, kept in ``learning.json``) and the online runs' learning curves
(``online_<task>.png``)."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from lmrl.reports.paper import paper_table2
from lmrl.reports.stats import mean_ci95


def ci95(scores: list[float]) -> float:
    """Half the 95% t-interval of the mean over seeds (NaN for one seed)."""
    return mean_ci95(scores)[1]


def interval(half: float) -> str:
    """``± half`` for the table; one seed has no interval: "± n/a", not "± nan"."""
    return "± n/a" if math.isnan(half) else f"± {half:.1f}"


def gain_over(scores: list[float], baseline: list[float] | None) -> str:
    """Each seed's score minus the same seed's baseline (BC, the run it started from), then the mean gain
    with the half-width of its paired 95% interval: seeds share data and start, so the pairs are what
    says whether a method beats BC, not two overlapping intervals. "-" without a baseline."""
    if baseline is None or len(baseline) != len(scores):
        return "-"
    gains = [s - b for s, b in zip(scores, baseline, strict=True)]
    by_seed = " ".join(f"{g:+.1f}" for g in gains)
    return f"{by_seed} ({statistics.fmean(gains):+.1f} {interval(ci95(gains))})"


def episodes_to_90(curve: list[float], per_round: int) -> int | None:
    """Episodes played until the rollout return first covers 90% of the way from the first round to
    the final level (mean of the last three rounds); None when it never improved."""
    final = statistics.fmean(curve[-3:])
    if final <= curve[0]:
        return None
    bar = curve[0] + 0.9 * (final - curve[0])
    return next(per_round * (i + 1) for i, value in enumerate(curve) if value >= bar)


def online_results(task_dir: Path, online: set[str]) -> dict[str, list[dict]]:
    """Every finished online run under ``task_dir``, by setting (the run name without its seed): the
    plot compares them all, whichever invocation of the bench trained each."""
    runs: dict[str, list[dict]] = {}
    for done in sorted(task_dir.glob("*-from-bc-s*/bench_result.json")):
        name = done.parent.name
        if any(name.startswith(f"{algo}-") for algo in online):
            runs.setdefault(name.rpartition("-s")[0].removesuffix("-from-bc"), []).append(
                json.loads(done.read_text())
            )
    return {name: results for name, results in runs.items() if "curve" in results[0]}


def plot_online(task: str, runs: dict[str, list[dict]], out: Path) -> None:
    """Rollout return and success per episode played, mean over seeds, one line per algorithm, with
    each seed's episodes-to-90% in the legend (``online_<task>.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("curve", "rollout mean return"), ("success_curve", "rollout success"))
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for axis, (key, label) in zip(axes, panels, strict=True):
        for algo, results in runs.items():
            curves = [r[key] for r in results if key in r]
            if not curves:
                continue
            length = min(map(len, curves))
            mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
            per_round = results[0]["episodes_per_round"]
            legend = f"{algo} (90% at {reach_per_seed(curves, per_round, ', ')} episodes)"
            axis.plot([per_round * (i + 1) for i in range(length)], mean, marker=".", label=legend)
        axis.set(xlabel="episodes played", ylabel=label)
        axis.legend(fontsize=7)
    figure.suptitle(f"{task}: online RL from BC (mean over seeds)")
    figure.tight_layout()
    figure.savefig(out / f"online_{task}.png", dpi=110)
    plt.close(figure)


def reach(runs: list[dict]) -> str:
    """Online runs: each seed's episodes until its rollout return, and its rollout success, cover 90%
    of their gain ("-" when it never gained); "" for offline runs."""
    if "curve" not in runs[0]:
        return ""
    per_round = runs[0]["episodes_per_round"]
    return ", ".join(
        f"{name} " + reach_per_seed([r[key] for r in runs if key in r], per_round)
        for name, key in (("return", "curve"), ("success", "success_curve"))
    )


def reach_per_seed(curves: list[list[float]], per_round: int, separator: str = " ") -> str:
    """Each curve's episodes to 90% of its gain, "-" where it never gained."""
    counts = [episodes_to_90(curve, per_round) for curve in curves]
    return separator.join("-" if n is None else str(n) for n in counts)


def picked(result: dict) -> str:
    """What validation chose for a run: its beta, or (``--pick-round``) its round."""
    if result.get("round") is not None:
        return f"round {result['round']}"
    return "-" if result["beta"] is None else f"{result['beta']:g}"


def paper(task: str, algo: str) -> float | None:
    table = paper_table2()
    return float(table.loc[task, algo]) if task in table.index and algo in table.columns else None


def merged(rows: list[dict], out: Path) -> list[dict]:
    """The table's rows: those of earlier invocations (``learning.json``) with this one's rows in
    place of the same (task, algorithm) and new ones after, so a bench run on one task keeps the
    others' rows."""
    saved = out / "learning.json"
    table = json.loads(saved.read_text()) if saved.exists() else []
    fresh = {(r["task"], r["algo"]): r for r in rows}
    table = [fresh.pop((r["task"], r["algo"]), r) for r in table] + list(fresh.values())
    saved.write_text(json.dumps(table, indent=1) + "\n")
    return table


def write(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = merged(rows, out)
    with (out / "learning.csv").open("w", newline="") as handle:
        fields = list(dict.fromkeys(k for r in rows for k in r))  # rows of older benches may lack a column
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| task | algorithm | normalized (mean ± 95% CI over seeds) | per seed "
        "| over BC (rows from filtered BC: over it) by seed (paired mean ± 95% CI) "
        "| return / success / invalid "
        "| beta or round (validation) | online: episodes to 90% | move accuracy | paper Table 2 "
        "| behaviour policy | data episodes | steps | CPU min/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['algo']} | {r['normalized']} {interval(r['ci95'])} | {r['per_seed']} "
            f"| {r['over_bc']} | {r['mean_return']:.3g} / {r['success']:.0%} / {r['invalid']:.1%} "
            f"| {r['beta']} | {r['episodes_to_90']} | {r['move_accuracy']} | {r['paper']} "
            f"| {r['behaviour_policy']} | {r['dataset_episodes']} | {r['max_steps']} "
            f"| {r['cpu_minutes_per_run']} |"
        )
    (out / "learning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
