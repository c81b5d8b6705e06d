"""The paper's Table 2 (normalized scores per task and method), shown beside our leaderboard."""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

# Column names of the data file -> how the paper names the methods.
METHODS = {
    "bc": "BC",
    "filtered-bc": "%BC",
    "mc": "MC Returns",
    "ilql": "ILQL",
    "ppo": "Online PPO",
    "online-filtered-bc": "Online %BC",
    "gpt-4": "GPT-4",
}


@functools.cache
def paper_table2() -> pd.DataFrame:
    """Tasks (our names) x methods (``METHODS`` keys), normalized scores as printed in the paper."""
    with resources.files("lmrl.reports").joinpath("data/paper_table2.csv").open() as handle:
        return pd.read_csv(handle, comment="#").set_index("task")
