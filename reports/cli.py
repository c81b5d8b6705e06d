"""``lmrl show``, ``lmrl export`` and ``lmrl report``: the reports' half of the command line (``lmrl.cli``
adds these parsers and calls ``run``). Input the user can fix raises ``ReportInputError``: one line on
stderr, exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmrl.reports.load import Loaded, ReportInputError, kind_of, load


def add_parsers(sub: Any, positive_int: Callable[[str], int]) -> None:
    show = sub.add_parser("show", help="summary table of runs: returns, CI, normalized score, cost")
    show.add_argument(
        "run_dir",
        type=Path,
        nargs="+",
        help="run directories written by `lmrl run` (or `lmrl train` outputs)",
    )
    show.add_argument("--csv", type=Path, help="also write the table as CSV")
    show.add_argument("--seed", type=int, default=0, help="bootstrap seed of the 95%% intervals (0)")

    export = sub.add_parser(
        "export", help="write episodes/turns/judges Parquet for pandas, or chat JSONL (--format messages)"
    )
    export.add_argument("run_dir", type=Path, help="a run directory written by `lmrl run`")
    export.add_argument(
        "--format",
        choices=["parquet", "messages"],
        default="parquet",
        help="parquet: episodes/turns/judges.parquet in the run directory; messages: one chat conversation "
        "per episode with its rewards (datasets.load_dataset('json') and TRL SFT read it as is)",
    )
    export.add_argument("--out", type=Path, help="messages: the JSONL file (default RUN/messages.jsonl)")

    report = sub.add_parser(
        "report",
        help="CSV tables and a static HTML report (leaderboard, CIs, paired tests, plots, transcripts)",
    )
    report.add_argument(
        "paths", type=Path, nargs="+", metavar="RUN_OR_CKPT", help="run directories and `lmrl train` outputs"
    )
    report.add_argument("--out", type=Path, required=True, help="report directory (created)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed of the 95%% intervals (0)")
    report.add_argument("--per-page", type=positive_int, default=25, help="episodes per transcript page (25)")


def run(args: argparse.Namespace, console: Callable[[], Any]) -> int:
    if args.command == "show":
        print_summary(args.run_dir, console(), args.csv, args.seed)
    elif args.command == "export":
        export_run(args.run_dir, fmt=args.format, out=args.out)
    else:
        report(args.paths, args.out, args.seed, args.per_page)
    return 0


def _partial_notes(loaded: Loaded) -> None:
    for run in loaded.runs:
        if run.partial:
            print(f"note: {run.path} is partial: {run.finished} of {run.planned} episodes finished")
        if run.errors:
            print(
                f"note: {run.path}: {run.errors} episode(s) ended with an error (left out of the statistics)"
            )
        if run.damaged:
            print(
                f"warning: {run.path}: {len(run.damaged)} line(s) of episodes.jsonl are not episodes, "
                f"skipped (first: line {run.damaged[0] + 1}); `lmrl run` on it moves them to "
                "episodes.quarantine.jsonl",
                file=sys.stderr,
            )
        quarantine = run.path / "episodes.quarantine.jsonl"
        if quarantine.exists():
            count = quarantine.read_bytes().count(b"\n")
            print(f"warning: {run.path}: {count} damaged line(s) are kept in {quarantine}", file=sys.stderr)


def print_summary(paths: list[Path], console: Any, csv: Path | None = None, seed: int = 0) -> None:
    """The terminal view of the same metrics ``lmrl report`` writes."""
    from rich.table import Table

    from lmrl.reports.summary import summarize

    loaded = load(paths)
    frame = summarize(loaded.episodes, loaded.anchors, seed=seed)
    if csv:
        try:
            frame.to_csv(csv, index=False)
        except OSError as error:
            raise ReportInputError(f"cannot write {csv}: {error.strerror or error}") from None

    def fmt(value: Any, spec: str) -> str:
        return "–" if value is None or value != value else format(value, spec)

    def interval(row: dict[str, Any], name: str, low: str, high: str, spec: str) -> str:
        if row[name] != row[name]:
            return "–"
        return f"{fmt(row[name], spec)} [{fmt(row[low], spec)}, {fmt(row[high], spec)}]"

    title = ", ".join(str(p) for p in paths)
    shown = int((~loaded.episodes["step_eval"]).sum())  # evaluations during training: `lmrl report` curves
    table = Table(title=f"{title}  ({shown} episodes)")
    headers = ["task", "model", "episodes", "truncated", "errors", "mean return [95% CI]"]
    headers += ["normalized [95% CI]", "success", "invalid", "turns", "tokens", "cost $"]
    judges = [c for c in frame.columns if c.startswith("judge:")]
    for header in headers + judges:
        table.add_column(header, justify="left" if header in ("task", "model") else "right")
    for row in frame.to_dict("records"):
        cut = f" ({row['cut_by_max_turns']} by --max-turns)" if row["cut_by_max_turns"] else ""
        judge_cells = []
        for column in judges:
            failed = row.get(f"judge_failures:{column[6:]}", 0) or 0
            judge_cells.append(fmt(row[column], ".3g") + (f" ({failed:.0f} failed)" if failed else ""))
        table.add_row(
            row["task"],
            row["model"],
            str(row["episodes"]),
            f"{row['truncated']}{cut}",
            str(row["errors"]),
            interval(row, "mean_return", "ci_low", "ci_high", ".3g"),
            interval(row, "normalized", "normalized_low", "normalized_high", ".1f"),
            fmt(row["success_rate"], ".1%"),
            fmt(row["invalid_rate"], ".1%"),
            fmt(row["mean_turns"], ".1f"),
            f"{row['tokens']:,}",
            fmt(row["cost_usd"], ".4f"),
            *judge_cells,
        )
    console.print(table)
    _partial_notes(loaded)


def export_run(run_dir: Path, quiet: bool = False, fmt: str = "parquet", out: Path | None = None) -> None:
    from lmrl.reports.export import export_messages, export_parquet

    if kind_of(run_dir) != "run":
        raise ReportInputError(
            f"{run_dir} is a training output; export one of its run directories (evals/...)"
        )
    try:
        if fmt == "messages":
            target = out or run_dir / "messages.jsonl"
            count = export_messages(run_dir, target)
            if not quiet:
                print(f"wrote {count} conversations to {target}")
            return
        written = export_parquet(run_dir)
    except OSError as error:
        raise ReportInputError(f"cannot write the export: {error.strerror or error}") from None
    if not quiet:
        print("wrote " + " and ".join(str(p) for p in written))


def report(paths: list[Path], out: Path, seed: int = 0, per_page: int = 25) -> None:
    from lmrl.reports.report import write_report

    for path in paths:  # every path checked before anything is written
        kind_of(path)
    try:
        result = write_report(paths, out, seed=seed, per_page=per_page)
    except OSError as error:
        raise ReportInputError(f"cannot write the report to {out}: {error.strerror or error}") from None
    loaded = result.loaded
    print(
        f"{len(loaded.episodes)} episodes from {len(loaded.runs)} run(s): "
        f"{out / 'summary.csv'}, {out / 'episodes.csv'}, {out / 'paired.csv'}"
    )
    _partial_notes(loaded)
    print(f"open {result.index}")
