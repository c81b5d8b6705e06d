"""``lmrl export``: a run as Parquet tables (episodes, turns, judge scores) or as chat-format JSONL.

The messages format is one conversation per line, the shape ``datasets.load_dataset("json", ...)`` and
TRL's SFT trainer take as is (a ``messages`` list of ``{"role", "content"}``)::

    {"messages": [{"role": "system", "content": <system prompt>}, {"role": "user", "content": <observation>},
                  {"role": "assistant", "content": <raw output>}, ...],
     "rewards": [<reward of each assistant turn>], "invalid": [<was it invalid>], "return": 1.0,
     "success": true, "terminated": true, "truncated": false, "error": null, "task": ..., "model": ...,
     "key": ..., "index": 0, "epoch": 0, "seed": ..., "final_observation": ...}

Every line has every field with the same type, so a JSON reader infers one schema for the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmrl.episode import Episode
from lmrl.reports.frames import episodes_frame, judges_frame, turns_frame
from lmrl.reports.load import iter_records
from lmrl.rundir import EPISODES, PROMPTS, load_episodes


def export_parquet(run_dir: Path) -> list[Path]:
    """``episodes.parquet``, ``turns.parquet`` and ``judges.parquet`` beside the run's log, typed (no
    JSON strings), judge scores from ``lmrl score`` merged in."""
    episodes = load_episodes(run_dir)
    written = []
    for name, frame in (
        ("episodes", episodes_frame(episodes)),
        ("turns", turns_frame(episodes)),
        ("judges", judges_frame(episodes)),
    ):
        path = run_dir / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        written.append(path)
    return written


def conversation(episode: Episode, system_prompt: str | None) -> dict[str, Any]:
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in episode.turns:
        messages.append({"role": "user", "content": turn.observation})
        messages.append({"role": "assistant", "content": turn.raw_output})
    return {
        "messages": messages,
        "rewards": [float(t.reward) for t in episode.turns],
        "invalid": [bool(t.invalid) for t in episode.turns],
        "return": float(episode.return_),
        "success": bool(episode.success),
        "terminated": bool(episode.terminated),
        "truncated": bool(episode.truncated),
        "error": episode.error,
        "task": episode.task,
        "model": episode.models.get("agent", ""),
        "key": episode.key,
        "index": episode.index,
        "epoch": episode.epoch,
        "seed": episode.seed,
        "final_observation": episode.final_observation,
    }


def export_messages(run_dir: Path, out: Path) -> int:
    """Write the run's episodes as chat JSONL to ``out``; return how many were written. Streams the
    log (twice: a later record for an episode replaces an earlier one), so any size fits in memory."""
    prompts: dict[str, str] = {}
    if (run_dir / PROMPTS).exists():
        try:
            prompts = {
                k: v.get("text", "")
                for k, v in json.loads((run_dir / PROMPTS).read_text())["prompts"].items()
            }
        except (ValueError, KeyError, AttributeError):
            prompts = {}  # a damaged ledger: conversations without their system prompt
    last = {record["key"]: line for line, record in iter_records(run_dir / EPISODES)}
    keep = set(last.values())
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for line, record in iter_records(run_dir / EPISODES):
            if line not in keep:
                continue
            episode = Episode.from_dict(record)
            row = conversation(episode, prompts.get(episode.prompt_id or ""))
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    return written
