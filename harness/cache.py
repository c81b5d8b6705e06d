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

Cost per call, on the event loop: the key (one SHA-256 over a length-prefixed encoding of the
request, no JSON of the conversation), a set lookup, and for a miss one queue put. A run keeps the
hashes of the keys on disk in memory (loaded at open: ~80 bytes and ~1.5 us an entry): a key not among
them is a miss without reading SQLite, so a cold cache never reads. Replies are serialized and
inserted by one writer thread, in batches (writing them on the loop measured slower: SQLite's inserts
and WAL checkpoints then hold the loop, where in the thread they run without the GIL).

The index learns the keys other processes wrote since it was loaded each time the writer commits (it
reads the rows above the highest rowid it has seen, inside its write transaction), so a run that keeps
missing picks up a concurrent run's entries within one batch; a run that only hits needs nothing new.
The index can only err towards a wrong "absent" (an entry another process wrote since the last batch,
or one written again after another process cleared the cache): that costs a request the cache could
have answered, never a wrong reply, since a "present" is always read back from SQLite by its key.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import queue
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


_BATCH_S = 0.02  # the writer waits this long after the first queued reply so that a batch gathers
_INSERT = "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)"
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


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another process holds the lock: two processes that
    open a new cache at once can meet SQLITE_BUSY here without SQLite's busy handler ever waiting."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


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


@functools.lru_cache(maxsize=256)
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


def _digest(body: dict[str, Any]) -> str:
    """SHA-256 of a canonical, unambiguous encoding of ``body``: the small fields as sorted JSON, then
    the prompt text or each chat message length-prefixed (role, content). JSON-escaping a long
    conversation was most of a miss's cost; lengths keep any two different requests apart without it.
    A message with other fields or non-string values is encoded as sorted JSON, under its own tag."""
    head = {k: v for k, v in body.items() if k not in ("messages", "prompt")}
    parts = [_json(head)]
    prompt = body.get("prompt")
    if prompt is not None:
        text = prompt if isinstance(prompt, str) else _json(prompt)
        parts.append(f"\nP{'s' if isinstance(prompt, str) else 'j'}{len(text)}:{text}")
    messages = body.get("messages")
    if messages is not None:
        parts.append(f"\nM{len(messages)}")
        for message in messages:
            if type(message) is dict and len(message) == 2:
                role, content = message.get("role"), message.get("content")
                if type(role) is str and type(content) is str:
                    parts.append(f"\nm{len(role)}:{role}{len(content)}:{content}")
                    continue
            text = _json(message)
            parts.append(f"\nj{len(text)}:{text}")
    return hashlib.sha256("".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _sqlite_error(path: Path, error: sqlite3.Error | OSError) -> CacheError:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return CacheError(f"cannot use the response cache {path}: {reason}")


class ResponseCache:
    """One SQLite file. Thread-safe (one connection behind a lock). Async callers use ``aget``, which
    reads on the loop when the connection is free and in a worker thread otherwise (a lock held by
    another process never stalls the loop), and ``store``, which queues the reply for the writer
    thread and returns at once. ``index=False`` (``lmrl cache``) skips loading the keys' index."""

    def __init__(self, directory: Path, create: bool = True, index: bool = True) -> None:
        self.path = Path(directory).expanduser() / FILE
        self.hits = self.stored = self.errors = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()  # replies to write
        self._writer: threading.Thread | None = None
        self._starting = threading.Lock()
        self._index: set[int] | None = None  # hash() of every key on disk (and queued); None: not kept
        self._top_rowid = 0  # the highest rowid the index has seen
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.exists():
                raise CacheError(f"no response cache at {self.path}")
            self._db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            _switch_to_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a crash loses the tail
            self._db.executescript(_SCHEMA)
            if index:
                with self._lock:
                    self._db.execute("BEGIN")  # one snapshot: the keys and the highest rowid agree
                    try:
                        self._load_index()
                    finally:
                        self._db.execute("COMMIT")
        except (sqlite3.Error, OSError) as error:
            raise _sqlite_error(self.path, error) from None

    # --- calls ---------------------------------------------------------------------------------
    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else _completion(row[0])

    def put(self, key: str, model: str, role: str, completion: Completion) -> None:
        """Store one reply now (autocommit); ``store`` is the batched, non-blocking way."""
        row = _row(_fields(key, model, role, completion))
        with self._lock:
            self._db.execute(_INSERT, row)
            self.stored += 1
        if self._index is not None:
            self._index.add(hash(key))

    async def aget(self, key: str) -> Completion | None:
        """The cached reply, or ``None``; a cache that fails to answer is a miss, never a failed call."""
        if self._index is not None and hash(key) not in self._index:
            return None  # not on disk when the index last looked: a cold cache never reads
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

    def store(self, key: str, model: str, role: str, completion: Completion) -> None:
        """Queue a reply for the writer thread and return at once: serializing it and the SQLite
        insert happen there, in batches (``close`` writes what is still queued)."""
        if self._index is not None:
            self._index.add(hash(key))
        self._queue.put(_fields(key, model, role, completion))
        if self._writer is None:
            with self._starting:  # one writer, even if several threads store at once
                if self._writer is None:
                    writer = threading.Thread(
                        target=self._write_queued, name="lmrl-cache-writer", daemon=True
                    )
                    writer.start()
                    self._writer = writer

    def _write_queued(self) -> None:
        """The writer thread: wait for a reply, let a batch gather, write it in one transaction; stop at
        the ``None`` that ``close`` queues, after writing everything before it."""
        done = False
        while not done:
            first = self._queue.get()
            if first is not None:
                time.sleep(_BATCH_S)
            batch = [first]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            done = any(entry is None for entry in batch)
            fields = [entry for entry in batch if entry is not None]
            if not fields:
                continue
            try:
                self._write([_row(entry) for entry in fields])
            except (sqlite3.Error, TypeError, ValueError):
                self.errors += len(fields)  # the calls themselves succeeded; only their reuse is lost

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            # IMMEDIATE: no other process commits between reading what it added and our insert.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._index is not None:
                    self._catch_up()
                self._db.executemany(_INSERT, rows)
                if self._index is not None:
                    (top,) = self._db.execute("SELECT MAX(rowid) FROM responses").fetchone()
                    self._top_rowid = top or 0
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self.stored += len(rows)

    def _load_index(self) -> None:
        (top,) = self._db.execute("SELECT MAX(rowid) FROM responses").fetchone()
        self._index = {hash(key) for (key,) in self._db.execute("SELECT key FROM responses")}
        self._top_rowid = top or 0

    def _catch_up(self) -> None:
        """Add the keys other processes stored since the index last looked (inside a transaction). The
        set is only ever added to, in place: the loop reads it meanwhile."""
        assert self._index is not None
        top = self._db.execute("SELECT MAX(rowid) FROM responses").fetchone()[0] or 0
        if top < self._top_rowid:  # emptied (``lmrl cache clear``) and refilled: read all of it
            rows = self._db.execute("SELECT key FROM responses")
        elif top > self._top_rowid:
            rows = self._db.execute("SELECT key FROM responses WHERE rowid > ?", (self._top_rowid,))
        else:
            return
        self._index.update(hash(key) for (key,) in rows)
        self._top_rowid = top

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
        """Write every queued reply, then close the file."""
        with self._starting:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join()
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


def _fields(key: str, model: str, role: str, completion: Completion) -> tuple[Any, ...]:
    """What a row needs, taken when the reply arrives (the caller may change its ``Completion``)."""
    return (
        key,
        model,
        role,
        completion.text,
        completion.tokens_in,
        completion.tokens_out,
        completion.cost_usd,
        completion.token_ids,
        completion.logprobs,
        time.time(),
    )


def _row(fields: tuple[Any, ...]) -> tuple[Any, ...]:
    key, model, role, text, tokens_in, tokens_out, cost_usd, token_ids, logprobs, created_at = fields
    value: dict[str, Any] = {
        "text": text,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": cost_usd,
    }
    if token_ids is not None:
        value["token_ids"] = token_ids
    if logprobs is not None:
        value["logprobs"] = logprobs
    return (key, model, role, json.dumps(value, ensure_ascii=False), created_at)
