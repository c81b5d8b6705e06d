"""The settings of a local checkpoint agent (``--local-option KEY=VALUE``), checked when the agent is
made: device and dtype, sampling beyond temperature, batching, prefix reuse, value guidance."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from lmrl.agents.base import AgentConfigError
from lmrl.options import flag_option

PREFIX_CACHE_ENV = "LMRL_PREFIX_CACHE_MB"  # the default prefix_cache_mb of every local agent
_DEVICE = re.compile(r"auto|cpu(:\d+)?|cuda(:\d+)?|mps")
_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


# --- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LocalSettings:
    device: str = "auto"
    dtype: str = "auto"
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    max_batch_size: int = 64
    max_batch_tokens: int = 65536
    batch_window_ms: float = 10.0
    max_prompt_tokens: int | None = None
    share_prefixes: bool = True
    prefix_cache_mb: float | None = None  # None: decided from the free memory at load
    beta: float | None = None  # value-guided decoding weight; None: the one saved with the heads
    rerank: bool = False  # pick among the task's candidate actions (maze's four moves) instead of generating
    # Sample this many replies from the BC policy and pick among the distinct actions they name as
    # ``rerank`` does (for open-ended actions; a value of whole actions then scores whole actions). 0: off.
    proposals: int = 0

    KEYS = (
        "device",
        "dtype",
        "top_p",
        "top_k",
        "stop",
        "max_batch_size",
        "max_batch_tokens",
        "batch_window_ms",
        "max_prompt_tokens",
        "share_prefixes",
        "prefix_cache_mb",
        "beta",
        "rerank",
        "proposals",
    )

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> LocalSettings:
        """Read the local-only keys of ``AgentOptions.extra`` (others belong to other agent kinds)."""
        fields: dict[str, Any] = {}
        try:
            if "device" in extra and extra["device"] is not None:
                fields["device"] = str(extra["device"]).strip().lower()
                if not _DEVICE.fullmatch(fields["device"]):  # the spelling, at once; availability at load
                    given = extra["device"]
                    raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, not {given!r}")
            if "dtype" in extra and extra["dtype"] is not None:
                name = str(extra["dtype"]).strip().lower().removeprefix("torch.")
                if name != "auto" and name not in _DTYPES:
                    raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, not {name!r}")
                fields["dtype"] = _DTYPES.get(name, name)
            if extra.get("top_p") is not None:
                fields["top_p"] = float(extra["top_p"])
                if not 0 < fields["top_p"] <= 1:
                    raise ValueError(f"top_p must be in (0, 1], not {extra['top_p']}")
            if extra.get("top_k") is not None:
                fields["top_k"] = _nonneg_int("top_k", extra["top_k"])
            if extra.get("stop") is not None:
                stop = extra["stop"]
                stops = [stop] if isinstance(stop, str) else list(stop)
                if not all(isinstance(s, str) and s for s in stops):
                    raise ValueError("stop must be a non-empty string or a list of them")
                fields["stop"] = tuple(stops)
            for key in ("max_batch_size", "max_batch_tokens", "max_prompt_tokens"):
                if extra.get(key) is not None:
                    fields[key] = _nonneg_int(key, extra[key], minimum=1)
            if extra.get("proposals") is not None:
                fields["proposals"] = _nonneg_int("proposals", extra["proposals"])
            if extra.get("rerank") is not None:
                fields["rerank"] = flag_option("rerank", extra["rerank"], error=ValueError)
            if extra.get("share_prefixes") is not None:
                fields["share_prefixes"] = flag_option(
                    "share_prefixes", extra["share_prefixes"], error=ValueError
                )
            # Several processes on one machine each take a quarter of the free memory by default;
            # the environment variable caps them all at once (bench/learning.py sets it per job).
            cache_mb = extra.get("prefix_cache_mb")
            name = "prefix_cache_mb"
            if cache_mb is None and os.environ.get(PREFIX_CACHE_ENV, "").strip():
                cache_mb, name = os.environ[PREFIX_CACHE_ENV], PREFIX_CACHE_ENV
            if cache_mb is not None:
                try:
                    fields["prefix_cache_mb"] = float(cache_mb)
                except (TypeError, ValueError):
                    raise ValueError(f"{name} must be a number of MiB, not {cache_mb!r}") from None
                if not fields["prefix_cache_mb"] >= 0:
                    raise ValueError(f"{name} must not be negative")
            if extra.get("beta") is not None:
                fields["beta"] = float(extra["beta"])
                if not (math.isfinite(fields["beta"]) and fields["beta"] >= 0):
                    raise ValueError(f"beta must be a number >= 0, not {extra['beta']!r}")
            if extra.get("batch_window_ms") is not None:
                fields["batch_window_ms"] = float(extra["batch_window_ms"])
                if fields["batch_window_ms"] < 0:
                    raise ValueError("batch_window_ms must not be negative")
        except (TypeError, ValueError) as error:
            raise AgentConfigError(f"local agent option: {error}") from None
        return cls(**fields)


def parse_local_options(items: list[str], flag: str = "--local-option") -> dict[str, Any]:
    """``KEY=VALUE`` items (a JSON value, else the text) as local agent options, checked the way the
    agent will check them; ``ValueError`` (one line) for an unknown key or a bad value."""
    import json

    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in LocalSettings.KEYS:
            known = ", ".join(LocalSettings.KEYS)
            raise ValueError(f"{flag} {item!r} is not KEY=VALUE with KEY one of: {known}")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    try:
        LocalSettings.from_extra(options)
    except AgentConfigError as error:
        raise ValueError(f"{flag}: {error}") from None
    return options


def _nonneg_int(name: str, value: Any, minimum: int = 0) -> int:
    try:
        number = int(float(value))
        whole = number == float(value)
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return number
