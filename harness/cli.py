"""``lmrl``: the command line. Bad input is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from lmrl.cli_options import (
    UsageError,
    agent_options,
    extra_options,
    json_or_text,
    make_judges,
    roles,
    task_options,
)
from lmrl.cli_parser import EXIT_USAGE, build_parser
from lmrl.runfile import RunFileError, with_run_file

EXIT_FAILED = 1  # the run finished, but every episode it played ended with an error
EXIT_BUDGET = 3  # a budget (--max-cost, --fail-on-error) stopped the run; the rerun continues it
EXIT_INTERRUPTED = 130


def slug(text: str) -> str:
    """``text`` as a file name: each run of characters other than letters, digits and dots becomes -."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def _default_out(tasks: list[str], models: list[str], seed: int) -> Path:
    name = "_".join(["+".join(slug(t) for t in tasks), "+".join(slug(m) for m in models), f"s{seed}"])
    return Path("runs") / name[:150]


def _console():
    from rich.console import Console

    # Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
    return Console(width=None if sys.stdout.isatty() else 200)


def cmd_tasks() -> int:
    from rich.table import Table

    from lmrl.tasks import task_class, task_names

    table = Table(title="lmrl tasks")
    for column in ("task", "description", "roles", "reward range", "min / avg / max", "policies"):
        table.add_column(column)
    for name in task_names():
        cls = task_class(name)
        a = cls.anchors
        table.add_row(
            name,
            cls.description,
            ", ".join(f"{r} ({d})" for r, d in cls.roles.items()) or "agent",
            f"[{cls.reward_range[0]:g}, {cls.reward_range[1]:g}]",
            f"{a.min:g} / {a.avg:g} / {a.max:g}",
            ", ".join(sorted(cls.policies)),
        )
    _console().print(table)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import anyio

    from lmrl.agents import AgentConfigError, AgentOptions
    from lmrl.cache_cli import run_cache_dir
    from lmrl.runner import BudgetSpent, RunConfig, RunConfigError, Runner
    from lmrl.task import InvalidTaskOption
    from lmrl.tasks import resolve_task

    try:  # a user's task file (path/to/my_task.py:MyTask) becomes its task name here
        args.task = [resolve_task(spec) for spec in args.task]
    except InvalidTaskOption as error:
        raise UsageError(str(error)) from None
    out = args.out or _default_out(args.task, args.model, args.seed)
    if args.resume and not (out / "manifest.json").exists():
        raise UsageError(f"--resume: {out} is not an existing run directory")
    if args.max_retries < 0:
        raise UsageError("--max-retries must not be negative")
    config = RunConfig(
        out=out,
        tasks=args.task,
        models=args.model,
        episodes=args.episodes,
        epochs=args.epochs,
        concurrency=args.concurrency,
        seed=args.seed,
        style=args.style,
        task_options=task_options(args.task_option, args.task),
        agent_options=AgentOptions(
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.model_seed,
            api_base=args.api_base,
            request_timeout=args.timeout,
            max_retries=args.max_retries,
            concurrency=args.model_concurrency or args.concurrency,
            max_concurrency=args.max_model_concurrency,
            adaptive_concurrency=not args.fixed_model_concurrency,
            preflight=not args.no_preflight,
            extra=extra_options(args),
        ),
        retry_errors=args.retry_errors,
        max_turns=args.max_turns,
        max_cost=args.max_cost,
        max_episode_tokens=args.max_episode_tokens,
        max_episode_seconds=args.max_episode_seconds,
        fail_on_error=args.fail_on_error,
        command=["lmrl", *getattr(args, "argv", [])],
        roles=roles(args.role),
        role_options=agent_options(args.role_option, "--role-option", "oracle.api_base=URL"),
        cache=run_cache_dir(args),
    )
    try:
        judges = make_judges(args.judge, args.judge_option, AgentOptions())
        runner = Runner(config, judges)
    except (RunConfigError, AgentConfigError) as error:
        raise UsageError(str(error)) from None

    from lmrl.progress import RunProgress

    progress = RunProgress(enabled=not args.no_progress)
    try:
        with progress:
            result = anyio.run(runner.run, progress.update, progress.start)
    except BudgetSpent as error:
        print(f"lmrl: stopped: {error}", file=sys.stderr)
        return EXIT_BUDGET
    except (RunConfigError, AgentConfigError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:  # the run directory could not be created or written
        import errno

        where = getattr(error, "filename", None) or out
        if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise UsageError(
                f"stopped: no space to write {out} ({error.strerror}); episodes.jsonl is intact: "
                "free some space and rerun the same command to continue"
            ) from None
        raise UsageError(f"cannot write the run directory {where}: {error.strerror or error}") from None
    except KeyboardInterrupt:
        print(
            f"lmrl: interrupted; finished episodes are in {out}; rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if result.quarantined:
        print(
            f"lmrl: warning: {result.quarantined} line(s) of {out / 'episodes.jsonl'} were not episodes; "
            f"moved to {out / 'episodes.quarantine.jsonl'} (every good episode kept)",
            file=sys.stderr,
        )
    _export(out)
    _print_summary(out)
    if runner.cache is not None:
        hits, new = runner.cache.hits, runner.cache.stored
        print(f"lmrl: response cache {runner.cache.path}: {hits} hit(s), {new} new", file=sys.stderr)
    if result.stopped_by:
        print(f"lmrl: stopped by {result.stopped_by}; rerun to continue {out}", file=sys.stderr)
        return EXIT_BUDGET
    if not result.complete:
        print(f"lmrl: stopped early; rerun the same command to resume {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.errors:
        print(
            f"lmrl: {result.errors} episode(s) ended with an error (see the `error` field; "
            "--retry-errors replays them)",
            file=sys.stderr,
        )
        if result.errors == result.finished:
            print(f"lmrl: every episode played in this invocation failed ({result.errors})", file=sys.stderr)
            return EXIT_FAILED
    return 0


def cmd_check_task(args: argparse.Namespace) -> int:
    from lmrl.checker import check_task
    from lmrl.task import InvalidTaskOption, TaskUnavailable

    options = {}
    for item in args.task_option:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--task-option {item!r} is not KEY=VALUE")
        options[key.strip()] = json_or_text(raw)
    try:
        checks = check_task(args.task, episodes=min(args.episodes, 3), options=options)
    except (InvalidTaskOption, TaskUnavailable) as error:
        raise UsageError(str(error)) from None
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<15} {check.detail}")
    failed = [c.name for c in checks if not c.ok]
    print(
        f"{args.task}: {len(checks) - len(failed)}/{len(checks)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return EXIT_FAILED if failed else 0


def cmd_judges() -> int:
    from rich.table import Table

    from lmrl.judges import judge_entries

    table = Table(title="lmrl judges")
    for column in ("judge", "kind", "tasks", "description"):
        table.add_column(column)
    for entry in judge_entries():
        usage = entry.name if entry.kind == "rule" else f"{entry.name}=MODEL"
        table.add_row(usage, entry.kind, ", ".join(entry.tasks or ("all",)), entry.description)
    _console().print(table)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import anyio

    from lmrl.agents import AgentConfigError, AgentOptions
    from lmrl.judges.rescore import agreement, score_run

    _load(args.run_dir)  # one-line error when it is not a run
    options = AgentOptions(
        api_base=args.api_base,
        request_timeout=args.timeout,
        max_retries=args.max_retries,
        concurrency=args.concurrency,
        extra={"transport": args.transport},
    )
    judges = make_judges(args.judge, args.judge_option, options)
    try:
        for judge in judges:
            agent = getattr(judge, "agent", None)
            if agent is not None:
                anyio.run(agent.preflight)
    except AgentConfigError as error:
        raise UsageError(str(error)) from None
    try:
        result = anyio.run(score_run, args.run_dir, judges, args.concurrency)
    except KeyboardInterrupt:
        print("lmrl: interrupted; scores so far are saved; rerun to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    _export(args.run_dir)  # the Parquet tables carry the new scores too
    print(
        f"scored {result.scored}, cached {result.cached}, errors {result.errors}, "
        f"not applicable {result.skipped}"
    )
    for name, scores in result.by_judge.items():
        if scores:
            mean = sum(s for _, s in scores) / len(scores)
            print(f"  {name}: mean {mean:.3g} over {len(scores)} episodes")
    names = [j.key for j in judges if j.model]
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a = agreement(result.by_judge[first], result.by_judge[second])
            print(
                f"  agreement {first} vs {second}: n={a['n']:.0f} pearson={a['pearson']:.3f} "
                f"mean|diff|={a['mean_abs_diff']:.3f} exact={a['exact']:.1%}"
            )
    return 0


def _load(run_dir: Path):
    from lmrl.rundir import RunDirError, load_episodes, read_manifest

    try:
        manifest = read_manifest(run_dir)
        episodes = load_episodes(run_dir)
    except (RunDirError, ValueError, KeyError) as error:
        raise UsageError(str(error)) from None
    return manifest, episodes


def _print_summary(run_dir: Path) -> None:
    from lmrl.reports.cli import print_summary

    print_summary([run_dir], _console())


def _export(run_dir: Path) -> None:
    from lmrl.reports.cli import export_run

    try:
        export_run(run_dir, quiet=True)
    except OSError as error:  # the episodes are safe in episodes.jsonl; the Parquet copy can wait
        print(
            f"lmrl: warning: could not write the Parquet export of {run_dir}: {error.strerror}",
            file=sys.stderr,
        )


# Set in the CLI process only: importing lmrl as a library changes no environment variable.
_CLI_ENVIRONMENT = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm's bundled price map, no fetch at import
    "HF_HUB_OFFLINE": "1",  # never reach a model hub
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_WAIT_POLICY": "PASSIVE",  # torch's CPU threads do not busy-wait against engines and servers
}


_interrupted = False


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM ends like Ctrl-C: cleanly, exit 130, whatever it interrupts. Once: a repeated signal,
    or one that Python runs after the handler that first saw it has been swapped back, must not raise
    again inside the clean stop."""
    global _interrupted
    if not _interrupted:
        _interrupted = True
        raise KeyboardInterrupt


def _exit_interrupted(signum: int, frame: Any) -> None:
    """After the command returned (its work saved): exit 130 now, not -15 or a traceback at shutdown."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    global _interrupted
    _interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a run installs its own handler while it plays
    try:
        return _main(argv)
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C outside the commands' own handling (start-up, imports)
        print("lmrl: interrupted", file=sys.stderr)
        if argv is None:
            # CPython ends by SIGINT (-2), whatever main returns, once a KeyboardInterrupt has left code
            # run through its PyRun_* API (an extension's import can be): exit 130 here instead.
            _exit_interrupted(signal.SIGTERM, None)
        return EXIT_INTERRUPTED
    finally:
        # The lmrl process itself (no argv given) is about to exit; called from Python, put things back.
        signal.signal(signal.SIGTERM, _exit_interrupted if argv is None else previous)


def _main(argv: list[str] | None = None) -> int:
    import os

    for name, value in _CLI_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        argv = with_run_file(argv, build_parser())
    except RunFileError as error:
        print(f"lmrl: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.command == "tasks":
            return cmd_tasks()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "score":
            return cmd_score(args)
        if args.command == "judges":
            return cmd_judges()
        if args.command == "check-task":
            return cmd_check_task(args)
        if args.command == "cache":
            from lmrl.cache_cli import run as cmd_cache

            return cmd_cache(args)
        if args.command == "train":
            from lmrl.finetune.cli import run as cmd_train
            from lmrl.finetune.trainer import TrainError

            try:
                return cmd_train(args)
            except TrainError as error:
                raise UsageError(str(error)) from None
        if args.command in ("show", "export", "report"):
            from lmrl.reports.cli import run as cmd_reports

            return cmd_reports(args, _console)
    except UsageError as error:
        print(f"lmrl: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:  # ReportInputError (lmrl.reports), raised by show/export/report
        from lmrl.reports import ReportInputError

        if not isinstance(error, ReportInputError):
            raise
        print(f"lmrl: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as error:
        if str(error):  # lmrl.finetune's RunInterrupted: which run stopped, and where
            print(f"lmrl: interrupted: {error}; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
