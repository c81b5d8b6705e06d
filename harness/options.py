"""Validation of option values given as text (``--task-option``) or typed (Python callers)."""

from __future__ import annotations

from typing import Any

from lmrl.task import InvalidTaskOption

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def flag_option(name: str, value: Any, error: type[Exception] = InvalidTaskOption) -> bool:
    """``True``/``False``, or one of the usual spellings of them; anything else is a one-line error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise error(f"{name} must be true or false, not {value!r}")


def int_option(name: str, value: Any, low: int, high: int, error: type[Exception] = InvalidTaskOption) -> int:
    """An integer in [low, high] (``"12"`` and ``12.0`` are fine, ``True`` and ``"12.5"`` are not)."""
    message = f"{name} must be an integer from {low} to {high}, not {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise error(message)
    try:
        number = float(value)
    except ValueError:
        raise error(message) from None
    if not number.is_integer() or not low <= number <= high:
        raise error(message)
    return int(number)


def role_specs(items: list[str]) -> dict[str, str]:
    """``--role ROLE=SPEC`` items -> {role: spec}; a malformed one is a ``ValueError`` in one line."""
    roles: dict[str, str] = {}
    for item in items:
        role, sep, spec = item.partition("=")
        if not sep or not role.strip() or not spec.strip():
            raise ValueError(f"--role {item!r} is not ROLE=SPEC (e.g. oracle=openai/gpt-4o-mini)")
        roles[role.strip()] = spec.strip()
    return roles
