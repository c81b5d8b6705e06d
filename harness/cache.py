"""The on-disk response cache of API model calls (``lmrl run --cache``; ``lmrl cache`` manages it).

A call's key is a hash of the whole request: model, endpoint, chat messages or text prompt, the
generation options sent, the role asking (agent, a partner role, a judge), and the episode it belongs
to (seed, epoch, and how many identical requests that episode made before). With the episode in the
key, a sampled model keeps its variety across episodes, and a rerun of the same settings replays
every episode exactly, request for request, without reaching the server.

The value is the reply and its usage (tokens, the original cost). A hit costs nothing in the new run
(cost is money spent); the episode records how many of its calls were hits (``info.cache_hits``).
Credentials are never part of either: the request is stored only as its hash, and option names that
look like credentials are left out of it (a rotated key still hits).

Storage: one SQLite file (``$LMRL_CACHE/responses.sqlite``, default ``~/.cache/lmrl``) in WAL mode,
so readers never wait for writers and several processes can share it (SQLite serializes their writes;
``busy_timeout`` waits for the lock instead of failing).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from lmrl.agents.base import Completion
from lmrl.models.smollm2 import cache_root

FILE = "responses.sqlite"
_BUSY_TIMEOUT_S = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    role TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at);
"""
# Option names that carry credentials (api_key, access_token, ...); max_tokens does not match.
_CREDENTIAL = re.compile(r"(^|_)(api_?key|key|secret|password|credentials?|token)$", re.IGNORECASE)


class CacheError(ValueError):
    """The cache cannot be opened or read (unwritable directory, not an lmrl cache): one line."""


def default_dir() -> Path:
    """``$LMRL_CACHE`` (the root lmrl also keeps converted models in), else ``~/.cache/lmrl``."""
    return cache_root()


@dataclass
class _EpisodeScope:
    seed: int
    epoch: int
    seen: dict[str, int] = field(default_factory=dict)  # request hash -> times asked so far
    hits: int = 0


_active: ContextVar[ResponseCache | None] = ContextVar("lmrl_response_cache", default=None)
_episode: ContextVar[_EpisodeScope | None] = ContextVar("lmrl_cache_episode", default=None)


def current() -> ResponseCache | None:
    """The cache the running code stores calls in, or ``None`` (caching off)."""
    return _active.get()


@contextlib.contextmanager
def use_cache(directory: Path | None) -> Iterator[ResponseCache | None]:
    """Open the cache in ``directory`` (``None``: caching stays off) and make it the one API agents use
    for the tasks started inside; close it at the end."""
    if directory is None:
        yield None
        return
    cache = ResponseCache(directory)
    token = _active.set(cache)
    try:
        yield cache
    finally:
        _active.reset(token)
        cache.close()


@contextlib.contextmanager
def episode_scope(seed: int, epoch: int) -> Iterator[_EpisodeScope | None]:
    """Calls made inside belong to this episode (``rollout`` opens one per episode)."""
    if _active.get() is None:
        yield None
        return
    scope = _EpisodeScope(seed, epoch)
    token = _episode.set(scope)
    try:
        yield scope
    finally:
        _episode.reset(token)


def public_endpoint(api_base: str | None) -> str | None:
    """The endpoint without user info, query or fragment (where a key could hide)."""
    if not api_base:
        return None
    parts = urlsplit(api_base)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def request_key(request: dict[str, Any], role: str) -> str:
    """The cache key of one call: ``request`` (model, endpoint, prompt, options) plus the role and the
    current episode. Call it once per call: the n-th identical request of an episode gets its own key,
    as the server would have sampled it anew."""
    options = {k: v for k, v in (request.get("options") or {}).items() if not _CREDENTIAL.search(k)}
    body = {**request, "options": options, "role": role}
    digest = _digest(body)  # serialized and hashed once: the episode's part is added to the digest
    scope = _episode.get()
    if scope is None:
        return digest
    occurrence = scope.seen.get(digest, 0)
    scope.seen[digest] = occurrence + 1
    return hashlib.sha256(f"{digest}/{scope.seed}/{scope.epoch}/{occurrence}".encode()).hexdigest()


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _sqlite_error(path: Path, error: sqlite3.Error | OSError) -> CacheError:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return CacheError(f"cannot use the response cache {path}: {reason}")


class ResponseCache:
    """One SQLite file. Thread-safe (one connection behind a lock); async callers use ``aget``/``aput``,
    which run the query in a worker thread so a lock held by another process never stalls the loop."""

    def __init__(self, directory: Path, create: bool = True) -> None:
        self.path = Path(directory).expanduser() / FILE
        self.hits = self.stored = self.errors = 0
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []  # rows aput has queued for the writer thread
        self._writing = False
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.exists():
                raise CacheError(f"no response cache at {self.path}")
            self._db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a crash loses the tail
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as error:
            raise _sqlite_error(self.path, error) from None

    # --- calls ---------------------------------------------------------------------------------
    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else _completion(row[0])

    def put(self, key: str, model: str, role: str, completion: Completion) -> None:
        row = _row(key, model, role, completion)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", row)
            self.stored += 1

    async def aget(self, key: str) -> Completion | None:
        """The cached reply, or ``None``; a cache that fails to answer is a miss, never a failed call."""
        try:
            # In WAL mode a read never waits for a writer: answer on the loop when no thread holds the
            # connection (a ~4 us lookup), else in a thread.
            if self._lock.acquire(blocking=False):
                try:
                    row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
                finally:
                    self._lock.release()
                hit = None if row is None else _completion(row[0])
            else:
                hit = await anyio.to_thread.run_sync(self.get, key)
        except (sqlite3.Error, ValueError, KeyError):
            self.errors += 1
            return None
        if hit is not None:
            self.hits += 1
            scope = _episode.get()
            if scope is not None:
                scope.hits += 1
        return hit

    async def aput(self, key: str, model: str, role: str, completion: Completion) -> None:
        self._pending.append(_row(key, model, role, completion))
        if self._writing:
            return  # the running writer takes this row too
        self._writing = True
        try:
            while self._pending:
                rows, self._pending = self._pending, []
                try:
                    await anyio.to_thread.run_sync(self._write, rows)
                except sqlite3.Error:
                    self.errors += len(rows)  # the calls themselves succeeded; only their reuse is lost
        finally:
            self._writing = False

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self.stored += len(rows)

    # --- management (``lmrl cache``) -----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        with self._lock:
            entries, oldest, newest = self._db.execute(
                "SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM responses"
            ).fetchone()
            models = self._db.execute(
                "SELECT model, COUNT(*) FROM responses GROUP BY model ORDER BY COUNT(*) DESC, model"
            ).fetchall()
        size = sum(p.stat().st_size for p in self._files() if p.exists())
        return {
            "path": str(self.path),
            "entries": entries,
            "bytes": size,
            "oldest": oldest,
            "newest": newest,
            "models": dict(models),
        }

    def prune(self, older_than_s: float) -> int:
        """Delete the entries stored more than ``older_than_s`` seconds ago; return how many."""
        with self._lock:
            deleted = self._db.execute(
                "DELETE FROM responses WHERE created_at < ?", (time.time() - older_than_s,)
            ).rowcount
        self._compact()
        return deleted

    def clear(self) -> int:
        with self._lock:
            deleted = self._db.execute("DELETE FROM responses").rowcount
        self._compact()
        return deleted

    def _compact(self) -> None:
        # Give the space back; another process still reading keeps VACUUM from running: then later.
        with self._lock, contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _files(self) -> list[Path]:
        return [self.path, self.path.with_name(FILE + "-wal"), self.path.with_name(FILE + "-shm")]

    def close(self) -> None:
        rows, self._pending = self._pending, []
        with contextlib.suppress(sqlite3.Error):
            if rows:
                self._write(rows)
        with self._lock:
            self._db.close()


def _completion(response: str) -> Completion:
    value = json.loads(response)
    # A hit spends nothing: the original cost stays in the cache, the run counts 0.
    return Completion(
        text=value["text"],
        tokens_in=value["tokens_in"],
        tokens_out=value["tokens_out"],
        cost_usd=0.0,
        token_ids=value.get("token_ids"),
        logprobs=value.get("logprobs"),
    )


def _row(key: str, model: str, role: str, completion: Completion) -> tuple[Any, ...]:
    value: dict[str, Any] = {
        "text": completion.text,
        "tokens_in": completion.tokens_in,
        "tokens_out": completion.tokens_out,
        "cost_usd": completion.cost_usd,
    }
    if completion.token_ids is not None:
        value["token_ids"] = completion.token_ids
    if completion.logprobs is not None:
        value["logprobs"] = completion.logprobs
    return (key, model, role, json.dumps(value, ensure_ascii=False), time.time())
