"""``lmrl run --config run.toml``: a TOML file of ``lmrl run`` options, merged in front of the command
line so that the flags given there win (a repeatable flag given on the command line replaces the
file's list). Keys are the options' long names (``-`` or ``_``); tables stand for the repeatable
``NAME.KEY=VALUE`` options (``[task-option.wordle] vocab = "full"``) and ``KEY=VALUE`` ones
(``[model-option] reasoning_effort = "low"``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


class RunFileError(ValueError):
    """The run file cannot be read or names something ``lmrl run`` does not take: one line."""


# Options whose values are NAME.KEY=VALUE or KEY=VALUE strings: a TOML table may stand for them.
_KEYED = {"--task-option": 2, "--role-option": 2, "--judge-option": 2, "--role": 1, "--model-option": 1,
          "--local-option": 1}  # fmt: skip


def _config_tokens(path_text: str, run_parser: argparse.ArgumentParser, given: set[str]) -> list[str]:
    """A TOML run file as ``lmrl run`` arguments, leaving out the options ``given`` on the command line
    (flags override the file)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path_text)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RunFileError(f"--config {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise RunFileError(f"--config {path} is not valid TOML: {error}") from None
    actions = run_parser._option_string_actions
    tokens: list[str] = []
    for key, value in data.items():
        flag = "--" + key.replace("_", "-")
        action = actions.get(flag)
        if action is None or flag in ("--config", "--help"):
            raise RunFileError(f"--config {path}: unknown option {key!r} (keys are `lmrl run` options)")
        if action.dest in given:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise RunFileError(f"--config {path}: {key} must be true or false")
            tokens += [flag] if value else []
            continue
        if isinstance(value, dict):
            if flag not in _KEYED:
                raise RunFileError(f"--config {path}: {key} takes a value, not a table")
            value = _flatten(value, _KEYED[flag])
        for item in value if isinstance(value, list) else [value]:
            tokens += [flag, json.dumps(item) if isinstance(item, bool | dict | list) else str(item)]
    return tokens


def _flatten(table: dict[str, Any], depth: int) -> list[str]:
    """``{"wordle": {"vocab": "full"}}`` -> ``["wordle.vocab=full"]`` (depth 2); ``{"oracle": "x"}`` ->
    ``["oracle=x"]`` (depth 1). Values that are not strings are written as JSON."""
    items = []
    for name, value in table.items():
        if depth == 2 and isinstance(value, dict):
            items += [f"{name}.{key}" + "=" + _text(v) for key, v in value.items()]
        else:
            items.append(f"{name}={_text(value)}")
    return items


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def with_run_file(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``run`` arguments with a ``--config`` file merged in front of them (the flags win)."""
    if argv[:1] != ["run"] or not any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    run_parser = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    rest, path = [], None
    tokens = iter(argv[1:])
    for token in tokens:
        if token == "--config":
            path = next(tokens, None)
        elif token.startswith("--config="):
            path = token.split("=", 1)[1]
        else:
            rest.append(token)
    if not path:
        raise RunFileError("--config needs a file (--config run.toml)")
    actions = run_parser._option_string_actions
    given = {actions[t.split("=", 1)[0]].dest for t in rest if t.split("=", 1)[0] in actions}
    return ["run", *_config_tokens(path, run_parser, given), *rest, "--config", path]
