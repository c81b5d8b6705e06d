"""Reports: tidy episode tables (pandas), normalization, bootstrap statistics, paired comparisons, CSV
and static HTML reports, and exports (Parquet, chat JSONL).

    from lmrl.reports import load, compute_metrics, paired_comparisons
    from lmrl.reports.report import write_report              # matplotlib: imported on demand

    loaded = load([Path("runs/a"), Path("runs/b")])          # episodes frame + runs + training logs
    tidy = compute_metrics(loaded.episodes, loaded.anchors)  # task x model x metric, 95% CIs
    write_report([Path("runs/a")], Path("report"))           # summary.csv, episodes.csv, index.html
"""

from lmrl.reports.frames import episodes_frame, judges_frame, turns_frame
from lmrl.reports.load import Loaded, ReportInputError, load
from lmrl.reports.metrics import compute_metrics, wide
from lmrl.reports.normalize import normalized_score
from lmrl.reports.paired import paired_comparisons, shared_episodes
from lmrl.reports.paper import paper_table2
from lmrl.reports.stats import bootstrap_mean, mean_ci95, sign_flip_test
from lmrl.reports.summary import summarize

__all__ = [
    "Loaded",
    "ReportInputError",
    "bootstrap_mean",
    "compute_metrics",
    "episodes_frame",
    "judges_frame",
    "load",
    "mean_ci95",
    "normalized_score",
    "paired_comparisons",
    "paper_table2",
    "shared_episodes",
    "sign_flip_test",
    "summarize",
    "turns_frame",
    "wide",
]
