"""Reading the command line's option values: numbers, ``NAME.KEY=VALUE`` items, roles, agent and task
options, judges. Each bad value is a ``UsageError``: one line and exit 2."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any


class UsageError(Exception):
    """Anything the user can fix: printed as one line, exit 2."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def count_or_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count or a fraction") from None
    if value <= 0 or (value > 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"{text!r}: give a count (1, 2, ...) or a fraction in (0, 1)")
    return value


def keyed_options(items: list[str], flag: str, example: str) -> dict[str, dict[str, Any]]:
    """``NAME.KEY=VALUE`` items -> {NAME: {KEY: value}}; values are JSON where they parse as JSON."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        match = re.fullmatch(r"([\w-]+)\.(\w+)=(.*)", item, re.DOTALL)
        if not match:
            raise UsageError(f"{flag} {item!r} is not NAME.KEY=VALUE (e.g. {example})")
        name, key, raw = match.groups()
        options.setdefault(name, {})[key] = json_or_text(raw)
    return options


def json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def task_options(
    items: list[str], tasks: list[str], flag: str = "--task-option"
) -> dict[str, dict[str, Any]]:
    options = keyed_options(items, flag, "wordle.vocab=full")
    for task in options:
        if task not in tasks:
            plays = ", ".join(map(repr, tasks))
            raise UsageError(f"{flag} names task {task!r}, which is not in this run (it plays {plays})")
    return options


def agent_options(items: list[str], flag: str, example: str) -> dict[str, Any]:
    from lmrl.agents import AgentConfigError
    from lmrl.agents.base import options_from_settings
    from lmrl.agents.local_settings import LocalSettings

    try:
        return {
            name: options_from_settings(settings, LocalSettings.KEYS)
            for name, settings in keyed_options(items, flag, example).items()
        }
    except AgentConfigError as error:
        raise UsageError(f"{flag}: {error}") from None


def extra_options(args: argparse.Namespace) -> dict[str, Any]:
    """Agent-kind specific options: the transport and provider extras for API models, batching and
    device for local ones, top-p and stop strings for both."""
    extra: dict[str, Any] = {"transport": args.transport}
    for name in ("device", "dtype", "top_p", "stop", "max_batch_size"):
        value = getattr(args, name)
        if value is not None:
            extra[name] = value
    from lmrl.agents.local_settings import parse_local_options

    try:
        extra.update(parse_local_options(args.local_option))
    except ValueError as error:
        raise UsageError(str(error)) from None
    for item in args.model_option:
        key, sep, raw = item.partition("=")
        if not sep or not re.fullmatch(r"\w+", key.strip()):
            raise UsageError(f"--model-option {item!r} is not KEY=VALUE (e.g. reasoning_effort=low)")
        extra.setdefault("provider", {})[key.strip()] = json_or_text(raw)
    return extra


def roles(items: list[str]) -> dict[str, str]:
    from lmrl.options import role_specs

    try:
        return role_specs(items)
    except ValueError as error:
        raise UsageError(str(error)) from None


def make_judges(specs: list[str], option_items: list[str], default: Any) -> list[Any]:
    """Judges with their own options (``--judge-option NAME.KEY=VALUE``), else ``default``."""
    from lmrl.agents import AgentConfigError
    from lmrl.judges import make_judge

    per_judge = agent_options(option_items, "--judge-option", "agent-quality.api_base=URL")
    names = {spec.partition("=")[0].strip() for spec in specs}
    for name in per_judge:
        if name not in names:
            raise UsageError(f"--judge-option names judge {name!r}, which is not in this run")
    try:
        return [make_judge(spec, per_judge.get(spec.partition("=")[0].strip(), default)) for spec in specs]
    except AgentConfigError as error:
        raise UsageError(str(error)) from None
