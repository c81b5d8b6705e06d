"""A rich progress bar for runs: done / errors / mean return per task / tokens / cost."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lmrl.episode import Episode


class RunProgress:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]lmrl run"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=Console(stderr=True),
            disable=not enabled,
            refresh_per_second=5,
        )
        self._bar: Any = None
        self._returns: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        self._errors = 0
        self._tokens = 0
        self._cost = 0.0

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def start(self, planned: int, skipped: int) -> None:
        self._bar = self._progress.add_task("run", total=planned, completed=skipped, stats="")

    def update(self, episode: Episode) -> None:
        if episode.error is None:
            total = self._returns[episode.task]
            total[0] += episode.return_
            total[1] += 1
        else:
            self._errors += 1
        self._tokens += episode.tokens_in + episode.tokens_out
        self._cost += episode.cost_usd
        means = " ".join(f"{task} {s / n:.2f}" for task, (s, n) in sorted(self._returns.items()) if n)
        stats = f"errors {self._errors} · mean return {means} · {self._tokens:,} tok · ${self._cost:.4f}"
        self._progress.update(self._bar, advance=1, stats=stats)
