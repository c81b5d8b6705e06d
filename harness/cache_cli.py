"""``lmrl cache list|clear|prune``: look after the response cache that ``lmrl run --cache`` fills."""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import time
from pathlib import Path

from lmrl.cache import FILE, CacheError, ResponseCache, default_dir

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d*)?)([smhd])")


def duration_s(text: str) -> float:
    """``30s``, ``15m``, ``12h``, ``7d`` -> seconds (argparse type: a bad one is a one-line error)."""
    found = _DURATION.fullmatch(text.strip().lower())
    if not found:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (a number and s, m, h or d: 7d, 12h)")
    return float(found[1]) * _UNITS[found[2]]


def run_cache_dir(args: argparse.Namespace) -> Path | None:
    """The cache directory ``lmrl run`` uses: ``--cache-dir`` (which implies ``--cache``), else the
    default with ``--cache``, else ``None`` (off)."""
    if getattr(args, "cache_dir", None) is not None:
        return args.cache_dir
    return default_dir() if getattr(args, "cache", False) else None


def add_parser(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser("cache", help="the response cache of `lmrl run --cache`: list, clear, prune")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--cache-dir", type=Path, help=f"the cache's directory (default $LMRL_CACHE, else {default_dir()})"
    )
    actions = cache.add_subparsers(
        dest="cache_command", required=True, parser_class=type(cache), help="list, clear or prune"
    )
    actions.add_parser("list", parents=[where], help="entries, size on disk and entries per model")
    actions.add_parser("clear", parents=[where], help="delete every entry")
    prune = actions.add_parser("prune", parents=[where], help="delete the entries older than a duration")
    prune.add_argument(
        "--older-than", type=duration_s, required=True, metavar="DURATION", help="e.g. 7d, 12h, 30m, 90s"
    )


def run(args: argparse.Namespace) -> int:
    directory = args.cache_dir if args.cache_dir is not None else default_dir()
    if not (directory / FILE).exists():  # nothing to list or delete; never create an empty cache
        print(f"no response cache at {directory / FILE}")
        return 0
    try:
        cache = ResponseCache(directory, create=False, index=False)
        try:
            if args.cache_command == "list":
                _print_summary(cache)
            elif args.cache_command == "clear":
                print(f"deleted {cache.clear()} entries from {cache.path}")
            else:
                print(f"deleted {cache.prune(args.older_than)} entries older than {_age(args.older_than)}")
        finally:
            cache.close()
    except CacheError as error:
        print(f"lmrl: error: {error}", file=sys.stderr)
        return 2
    except sqlite3.Error as error:  # a damaged file found after opening: one line, not a traceback
        print(f"lmrl: error: response cache {directory / FILE}: {error}", file=sys.stderr)
        return 2
    return 0


def _print_summary(cache: ResponseCache) -> None:
    summary = cache.summary()
    print(f"{summary['path']}: {summary['entries']} entries, {_size(summary['bytes'])}")
    if summary["entries"]:
        now = time.time()
        print(f"oldest {_age(now - summary['oldest'])} ago, newest {_age(now - summary['newest'])} ago")
    for model, count in summary["models"].items():
        print(f"  {count:>8}  {model}")


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


def _age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.1f}{unit}"
    return f"{seconds:.0f}s"
