"""The run directory: ``manifest.json`` + append-only ``episodes.jsonl`` (+ Parquet exports).

Durability: finished episodes are written, flushed and fsynced in batches (group commit: one write
and one fsync for everything that finished meanwhile). A crash can only tear the last line; readers
drop a torn line and ``repair_log`` truncates it away before a resumed run appends.

Integrity: a complete line that is not an episode (damaged by hand, a disk, another program) is
skipped by every reader and counted (``log_health``); a resumed run moves it to
``episodes.quarantine.jsonl`` with its line number and keeps every good line. One process at a time
writes a run directory: ``RunLock`` (an ``flock`` on ``.lock``, released by the kernel on any exit, so
a lock left by a dead process is simply taken).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from lmrl.episode import Episode

MANIFEST = "manifest.json"
PROMPTS = "prompts.json"  # what each model saw once per task: system prompts (chat) or headers (text)
EPISODES = "episodes.jsonl"
JUDGES = "judges.jsonl"  # scores written by `lmrl score`, merged into episodes when they load
QUARANTINE = "episodes.quarantine.jsonl"  # lines of episodes.jsonl that were not episodes
LOCK = ".lock"


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


def _episode_record(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """(record, "") for a line that holds an episode, else (None, why not)."""
    try:
        record = json.loads(line)
    except ValueError as error:
        return None, f"not JSON ({error})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if not isinstance(record.get("key"), str) or not isinstance(record.get("turns", []), list):
        return None, "not an episode (no key)"
    return record, ""


@dataclass
class LogScan:
    records: list[dict[str, Any]]
    bad: list[tuple[int, bytes, str]]  # (1-based line number, the line, why it is not an episode)
    good_bytes: bytes  # the episode lines, in order, each with its newline
    torn: int  # bytes of an unfinished last line


def scan_log(path: Path) -> LogScan:
    """Every line of an episodes log sorted into episodes and the rest."""
    data = path.read_bytes() if path.exists() else b""
    records, bad, good = [], [], []
    consumed = 0
    for number, (offset, line) in enumerate(_complete_lines(data), start=1):
        consumed = offset
        record, why = _episode_record(line)
        if record is None:
            bad.append((number, line, why))
        else:
            records.append(record)
            good.append(line + b"\n")
    return LogScan(records, bad, b"".join(good), len(data) - consumed)


@dataclass
class Repair:
    torn_bytes: int = 0
    quarantined: int = 0


def repair_log(path: Path) -> Repair:
    """Before a resumed run appends: cut a torn last line, and move every complete line that is not an
    episode to ``episodes.quarantine.jsonl`` (with its line number) so that no good line is lost and no
    finished episode is played again. The quarantine is written and synced before the log is replaced."""
    if not path.exists():
        return Repair()
    scan = scan_log(path)
    if scan.bad:
        with open(path.with_name(QUARANTINE), "a", encoding="utf-8") as handle:
            for number, line, why in scan.bad:
                entry = {
                    "line": number,
                    "reason": why,
                    "text": line.decode("utf-8", "replace"),
                    "at": time.time(),
                }
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        _replace_bytes(path, scan.good_bytes)
    elif scan.torn:
        with open(path, "r+b") as handle:
            handle.truncate(len(scan.good_bytes))
            handle.flush()
            os.fsync(handle.fileno())
    return Repair(scan.torn, len(scan.bad))


def _replace_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete, parseable JSON object of a JSON-lines log, in order (a torn tail and damaged
    lines are skipped)."""
    if not path.exists():
        return []
    records = []
    for _, line in _complete_lines(path.read_bytes()):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every episode record in an episodes log; a later record for the same key replaces an earlier one."""
    if not path.exists():
        return []
    return list({record["key"]: record for record in scan_log(path).records}.values())


def log_health(run_dir: Path) -> tuple[int, int]:
    """(lines of episodes.jsonl that are not episodes, lines already quarantined): what readers warn of."""
    damaged = len(scan_log(run_dir / EPISODES).bad) if (run_dir / EPISODES).exists() else 0
    quarantine = run_dir / QUARANTINE
    kept = quarantine.read_bytes().count(b"\n") if quarantine.exists() else 0
    return damaged, kept


def health_warning(run_dir: Path) -> str | None:
    """One line for the user when the run's log has lines that are not episodes, else None."""
    damaged, kept = log_health(run_dir)
    parts = []
    if damaged:
        parts.append(f"{damaged} line(s) of {run_dir / EPISODES} are not episodes and were skipped")
    if kept:
        parts.append(f"{kept} line(s) were moved to {run_dir / QUARANTINE} earlier")
    return f"warning: {'; '.join(parts)}" if parts else None


class RunLockHeld(RunDirError):
    """Another live process writes this run directory."""


class RunLock:
    """An exclusive lock on a run directory for one writing process. ``flock`` is released by the kernel
    when the process exits in any way (SIGKILL included), so a stale lock cannot block anyone; the
    holder's PID is written into the file for the message the next process gives."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._handle: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunLockHeld(
                f"{self.path.parent} is being written by another lmrl process (pid {holder}); "
                "wait for it to finish or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.seek(0)
                self._handle.truncate()
            self._handle.close()  # closing releases the flock
            self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def load_episodes(run_dir: Path) -> list[Episode]:
    """The run's episodes, with the scores of ``lmrl score`` merged in (when the episode is unchanged)."""
    episodes = []
    for record in read_records(run_dir / EPISODES):
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):  # counted by log_health
            episodes.append(Episode.from_dict(record))
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
    """Appends JSON lines durably (group commit). ``append`` never blocks; ``run`` is the writer task.

    A write that fails (disk full, a file-size limit) is cut back to where the file ended before it,
    so the log never keeps a torn line, and the error goes up: the run stops and a rerun continues."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pending: list[str] = []
        self._wake = anyio.Event()
        self.written = 0

    def append(self, record: Episode | dict[str, Any]) -> None:
        line = record.to_json() if isinstance(record, Episode) else json.dumps(record, ensure_ascii=False)
        self._pending.append(line + "\n")
        self._wake.set()

    def _write(self, lines: list[str]) -> None:
        if not lines or self._fd < 0:
            return
        data = memoryview("".join(lines).encode("utf-8"))
        size = os.fstat(self._fd).st_size
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)  # nothing half-written stays behind
                os.fsync(self._fd)
            raise
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
            try:
                self._write(batch)
            finally:
                os.close(self._fd)
                self._fd = -1


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
