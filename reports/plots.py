"""Plots for the HTML report, drawn with matplotlib and returned as inline SVG text (no image files, no
network, nothing to execute)."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
        "svg.hashsalt": "lmrl",  # stable ids: the same report twice is the same bytes
        "font.size": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
_SIZE = (4.6, 2.6)


def to_svg(figure: plt.Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG sits inside HTML


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def return_distribution(task: str, episodes: pd.DataFrame) -> str:
    """Box plots of the episode returns, one per model (errored episodes left out)."""
    models = sorted(episodes["model"].unique())
    data = [episodes.loc[episodes["model"] == m, "return"].to_numpy() for m in models]
    figure, axes = plt.subplots(figsize=(_SIZE[0], 0.5 + 0.32 * len(models)))
    axes.boxplot(data, orientation="horizontal", showmeans=True, widths=0.6, flierprops={"markersize": 2})
    axes.set_yticks(range(1, len(models) + 1), [_short(m) for m in models])
    axes.set(xlabel="return", title=f"{task}: returns")
    return to_svg(figure)


def turns_to_solve(task: str, episodes: pd.DataFrame) -> str | None:
    """Histogram of the turns successful episodes took, per model; None when nothing was solved."""
    solved = episodes[episodes["success"]]
    if solved.empty:
        return None
    figure, axes = plt.subplots(figsize=_SIZE)
    top = int(solved["length"].max())
    bins = np.arange(0.5, top + 1.5, max(1, math.ceil(top / 40)))
    for model, group in sorted(solved.groupby("model"), key=lambda item: str(item[0])):
        axes.hist(group["length"], bins=bins, histtype="step", linewidth=1.2, label=_short(str(model)))
    axes.set(xlabel="turns to solve", ylabel="episodes", title=f"{task}: turns to solve")
    axes.legend(fontsize=6, frameon=False)
    return to_svg(figure)


def cost_vs_score(task: str, table: pd.DataFrame) -> str:
    """Cost per episode (agent, partners and judges) against the score, one point per model, with the
    score's 95% interval as an error bar."""
    use_normalized = table["normalized"].notna().any()
    score = "normalized" if use_normalized else "mean_return"
    figure, axes = plt.subplots(figsize=_SIZE)
    for row in table.itertuples(index=False):
        value = getattr(row, score)
        low, high = getattr(row, f"{score}_low"), getattr(row, f"{score}_high")
        err = None if math.isnan(low) else [[value - low], [high - value]]
        axes.errorbar(row.cost_usd_per_episode, value, yerr=err, fmt="o", capsize=3, label=_short(row.model))
    axes.set(
        xlabel="USD per episode",
        ylabel="normalized score" if use_normalized else "mean return",
        title=f"{task}: cost vs score",
    )
    axes.legend(fontsize=6, frameon=False)
    return to_svg(figure)


def learning_curve(title: str, log: pd.DataFrame, curve: pd.DataFrame) -> str:
    """Training loss (left) and evaluation score with its 95% interval (right) against the step."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.5, 2.8))
    if "loss" in log and log["loss"].notna().any():
        losses = log[log["loss"].notna()]
        left.plot(losses["step"], losses["loss"], color="tab:blue", marker="." if len(losses) < 30 else None)
    left.set(xlabel="step", ylabel="loss", title=f"{title}: training loss")
    if not curve.empty:
        right.plot(curve["step"], curve["value"], marker="o", color="tab:green")
        if curve["ci_low"].notna().any():
            right.fill_between(curve["step"], curve["ci_low"], curve["ci_high"], alpha=0.2, color="tab:green")
    right.set(xlabel="step", ylabel=curve.attrs.get("metric", "score"), title=f"{title}: evaluation")
    figure.tight_layout()
    return to_svg(figure)
