"""Reports: episode tables (pandas), normalization, statistics and summary tables.

The HTML report and plots arrive with a later issue; the pieces here are what ``lmrl show`` uses.
"""

from lmrl.reports.frames import episodes_frame, turns_frame
from lmrl.reports.normalize import normalized_score
from lmrl.reports.stats import mean_ci95
from lmrl.reports.summary import summarize

__all__ = ["episodes_frame", "mean_ci95", "normalized_score", "summarize", "turns_frame"]
