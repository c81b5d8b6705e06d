"""The run directory: ``manifest.json`` + append-only ``episodes.jsonl`` (+ Parquet exports).

Durability: finished episodes are written, flushed and fsynced in batches (group commit: one write
and one fsync for everything that finished meanwhile). A crash can only tear the last line; readers
drop a torn line and ``repair_log`` truncates it away before a resumed run appends.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from lmrl.episode import Episode

MANIFEST = "manifest.json"
PROMPTS = "prompts.json"  # what each model saw once per task: system prompts (chat) or headers (text)
EPISODES = "episodes.jsonl"
JUDGES = "judges.jsonl"  # scores written by `lmrl score`, merged into episodes when they load


class RunDirError(ValueError):
    """The run directory is unusable (not a run, incompatible config); one line for the user."""


def _complete_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(end offset, line) for every newline-terminated line that parses as JSON."""
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return
        yield end + 1, data[start:end]
        start = end + 1


def repair_log(path: Path) -> int:
    """Cut a torn or garbled tail off ``episodes.jsonl``; return how many bytes were dropped."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    good_end = 0
    for end, line in _complete_lines(data):
        try:
            json.loads(line)
        except ValueError:
            break  # a garbled line can only come from a crash mid-write: it and anything after it go
        good_end = end
    dropped = len(data) - good_end
    if dropped:
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
            handle.flush()
            os.fsync(handle.fileno())
    return dropped


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete, parseable record of a JSON-lines log, in order (a torn tail is ignored)."""
    if not path.exists():
        return []
    records = []
    for _, line in _complete_lines(path.read_bytes()):
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    return records


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record in an episodes log; a later record for the same key replaces an earlier one."""
    return list({record["key"]: record for record in read_jsonl(path)}.values())


def load_episodes(run_dir: Path) -> list[Episode]:
    """The run's episodes, with the scores of ``lmrl score`` merged in (when the episode is unchanged)."""
    episodes = [Episode.from_dict(r) for r in read_records(run_dir / EPISODES)]
    by_key = {episode.key: episode for episode in episodes}
    hashes: dict[str, str] = {}
    for score in read_jsonl(run_dir / JUDGES):
        episode = by_key.get(score.get("key", ""))
        if episode is None:
            continue
        if episode.key not in hashes:
            hashes[episode.key] = episode.content_hash()
        if score.get("content_hash") == hashes[episode.key]:
            episode.judges[score["judge"]] = score["entry"]
    return episodes


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.exists():
        raise RunDirError(f"{run_dir} is not an lmrl run directory (no {MANIFEST})")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise RunDirError(f"{path} is not valid JSON") from None


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(run_dir / MANIFEST, manifest)


def write_json_atomic(path: Path, data: Any) -> None:
    """Atomic replace, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def git_revision() -> str | None:
    """The lmrl source revision, when running from a git checkout."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


class DurableLog:
    """Appends JSON lines durably (group commit). ``append`` never blocks; ``run`` is the writer task."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in run()
        self._pending: list[str] = []
        self._wake = anyio.Event()
        self.written = 0

    def append(self, record: Episode | dict[str, Any]) -> None:
        line = record.to_json() if isinstance(record, Episode) else json.dumps(record, ensure_ascii=False)
        self._pending.append(line + "\n")
        self._wake.set()

    def _write(self, lines: list[str]) -> None:
        if lines:
            self._handle.write("".join(lines))
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.written += len(lines)

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                batch, self._pending = self._pending, []
                self._write(batch)
                await anyio.sleep(0)  # let finished episodes queue up: the next write takes them all
        finally:
            # On cancellation (Ctrl-C, end of run) whatever is still queued goes to disk now.
            batch, self._pending = self._pending, []
            self._write(batch)
            self._handle.close()


EpisodeLog = DurableLog  # the episodes log is the main use


class PromptLedger:
    """``prompts.json``: each distinct system prompt (chat) or text header (text) the run showed, once,
    by id (``Episode.prompt_id``); which ids each task x model saw; each model's style and chat
    template hash. Rewritten atomically whenever something new appears (rarely: prompts repeat)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"prompts": {}, "seen": {}, "models": {}}
        if path.exists():
            with contextlib.suppress(ValueError):  # a damaged ledger is rebuilt from what this run shows
                self.data.update(json.loads(path.read_text()))

    def add(self, task: str, model: str, style: str, prompts: dict[str, str]) -> None:
        changed = False
        for prompt_id, text in prompts.items():
            if prompt_id not in self.data["prompts"]:
                self.data["prompts"][prompt_id] = {"task": task, "style": style, "text": text}
                changed = True
            seen = self.data["seen"].setdefault(task, {}).setdefault(model, [])
            if prompt_id not in seen:
                seen.append(prompt_id)
                changed = True
        if changed:
            write_json_atomic(self.path, self.data)

    def record_models(self, described: dict[str, dict[str, Any]]) -> None:
        """Each model's style and chat template hash (local checkpoints, once loaded)."""
        for spec, info in described.items():
            entry = {k: info[k] for k in ("style", "chat_template_sha256") if info.get(k) is not None}
            self.data["models"][spec] = entry
        write_json_atomic(self.path, self.data)
