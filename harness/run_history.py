"""What a run directory remembers about how its episodes were played: each model's settings (by id,
which every episode names), every invocation (append-only), and what the run has spent."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from lmrl.agents import AgentOptions

# Agent options that change how calls are made, not what a model says: a rerun may change them freely.
_TRANSPORT_OPTIONS = frozenset(
    {
        "transport", "retry_base_delay", "max_batch_size", "max_batch_tokens", "batch_window_ms",
        "share_prefixes", "prefix_cache_mb", "device",
    }
)  # fmt: skip


def generation_settings(options: AgentOptions) -> dict[str, Any]:
    """What decides a model's replies, from its options: a run keeps one value of each per model."""
    settings = {"temperature": options.temperature, "max_tokens": options.max_tokens, "seed": options.seed}
    settings.update({k: v for k, v in sorted(options.extra.items()) if k not in _TRANSPORT_OPTIONS})
    return json.loads(json.dumps(settings, default=str))


def config_id(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def record_invocation(
    manifest: dict[str, Any],
    previous: dict[str, Any],
    settings: dict[str, dict[str, Any]],
    invocation: dict[str, Any],
) -> dict[str, str]:
    """Add this invocation's settings and record to ``manifest``, keeping what earlier invocations
    recorded (``previous``: the manifest before): nothing is overwritten. Returns each model's config id."""
    kept = dict(previous.get("settings", {}))
    ids = {}
    for spec, value in settings.items():
        ids[spec] = config_id(value)
        kept.setdefault(spec, {"id": ids[spec], "settings": value, "since": time.time()})
    manifest["settings"] = kept
    entry = {"at": time.time(), "lmrl_version": manifest.get("lmrl_version"),
             "git_revision": manifest.get("git_revision"), **invocation, "config_ids": ids}  # fmt: skip
    manifest["invocations"] = [*previous.get("invocations", []), entry]
    if previous.get("created_at"):
        manifest["created_at"] = previous["created_at"]
    return ids


def first_difference(before: Any, now: Any, where: str = "") -> tuple[str, Any, Any]:
    """The first setting (dotted path) where two settings records differ, with both values."""
    if isinstance(before, dict) and isinstance(now, dict):
        for key in sorted(set(before) | set(now)):
            if before.get(key) != now.get(key):
                name = key if where in ("", "agent") else f"{where}.{key}"
                return first_difference(before.get(key), now.get(key), name)
    return where, before, now


def spent(manifest: dict[str, Any], records: list[dict[str, Any]]) -> float:
    """What a run spent before this invocation: the invocations' own records, else (a run from before
    they were kept) what its logged episodes cost, agent + partners + judges."""
    invocations = manifest.get("invocations", [])
    if invocations and all("spent_usd" in i for i in invocations):
        return float(sum(i["spent_usd"] for i in invocations))
    total = 0.0
    for record in records if manifest else []:
        total += float(record.get("cost_usd") or 0.0)
        total += sum(float(u.get("cost_usd") or 0.0) for u in (record.get("role_usage") or {}).values())
        total += sum(float(j.get("cost_usd") or 0.0) for j in (record.get("judges") or {}).values())
    return total
