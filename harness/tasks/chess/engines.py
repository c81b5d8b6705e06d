"""Chess engines as a managed resource: finding Stockfish, and a bounded pool of UCI processes.

``find_stockfish()`` looks in ``STOCKFISH_PATH``, then ``stockfish`` on ``PATH``, then Debian's
``/usr/games/stockfish`` (not on ``PATH`` by default); without an engine it raises ``TaskUnavailable``
with a one-line install hint, which ``lmrl run`` turns into exit code 2.

``EnginePool`` is an async context manager over python-chess's asyncio UCI client. It starts engine
processes lazily, at most ``size`` of them, and lends one to each request (``play``, ``analyse``), so
many concurrent episodes share a few processes and no process is ever started per move. Per-request
UCI options (``{"UCI_LimitStrength": True, "UCI_Elo": 1350}``, ``{"Skill Level": 3}``) are applied for
that request only (python-chess resets every other option to its default, sending only what changed).

* **Games.** A request carries a ``game`` key; python-chess sends ``ucinewgame`` (a fresh hash) when a
  process serves a different game than its previous request. That costs ~3.5 ms with Stockfish 15.1,
  about ten times a shallow search, so an idle process that last served the same game is preferred.
* **Failures.** A process that dies (``EngineTerminatedError``), reports an error (``EngineError``) or
  does not answer within ``move_timeout`` seconds (a hang) is killed and replaced by a fresh one, and
  the request is retried once. A second failure raises ``EngineFailure``: the episode that asked ends
  with an error, the pool and the run go on.
* **Shutdown.** ``aclose`` (and leaving the ``async with`` block, Ctrl-C included) asks every process to
  quit and kills the ones that do not within two seconds; it is shielded from cancellation. Processes
  run in their own process group, so a terminal's Ctrl-C reaches only Python, which then closes them in
  order; if Python itself dies, Stockfish exits on its own when its stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import chess
import chess.engine

from lmrl.task import TaskUnavailable

T = TypeVar("T")

INSTALL_HINT = (
    "chess needs the Stockfish engine: `apt-get install stockfish` (Debian/Ubuntu) or set STOCKFISH_PATH"
)
# Where distributions put the binary when it is not on PATH (Debian/Ubuntu install it under /usr/games).
FALLBACK_PATHS: tuple[str, ...] = ("/usr/games/stockfish",)
# Engine names seen per executable path ("Stockfish 15.1"), for run manifests.
ENGINE_NAMES: dict[str, str] = {}


class EngineFailure(RuntimeError):
    """An engine request failed twice (crash, error or hang), or the pool is closed."""


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_stockfish() -> str:
    """The Stockfish executable to use; raises ``TaskUnavailable`` (one line, with the fix) if none."""
    configured = os.environ.get("STOCKFISH_PATH")
    if configured:
        found = configured if _executable(configured) else shutil.which(configured)
        if not found:
            raise TaskUnavailable(f"{INSTALL_HINT} (STOCKFISH_PATH={configured} is not an executable file)")
        return found
    found = shutil.which("stockfish") or next((p for p in FALLBACK_PATHS if _executable(p)), None)
    if not found:
        raise TaskUnavailable(INSTALL_HINT)
    return found


def engine_name(path: str) -> str | None:
    """The ``id name`` of the engine at ``path`` if a pool in this process has started it."""
    return ENGINE_NAMES.get(path)


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(eq=False)
class _Process:
    transport: asyncio.SubprocessTransport
    protocol: chess.engine.UciProtocol
    pid: int
    game: object = None  # the game key of the last request it served


class EnginePool:
    """At most ``size`` engine processes shared by concurrent requests (see the module docstring)."""

    def __init__(
        self,
        size: int = 1,
        path: str | None = None,
        *,
        threads: int = 1,
        hash_mb: int = 16,
        move_timeout: float = 30.0,
        start_timeout: float = 30.0,
    ) -> None:
        if size < 1:
            raise ValueError(f"engine pool size must be at least 1, not {size}")
        self.size = size
        self.path = path if path is not None else find_stockfish()
        self.threads = threads
        self.hash_mb = hash_mb
        self.move_timeout = move_timeout
        self.start_timeout = start_timeout
        self.name: str | None = None  # e.g. "Stockfish 15.1", known after the first start
        self.started = 0  # processes started, replacements included
        self.restarts = 0  # processes killed after a crash, an error or a hang
        self.requests = 0
        self._slots = anyio.Semaphore(size)
        self._idle: list[_Process] = []  # least recently used first
        self._live: set[_Process] = set()
        self._closed = False

    async def __aenter__(self) -> EnginePool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    def pids(self) -> list[int]:
        """Process ids of the engines alive now (idle or busy)."""
        return sorted(p.pid for p in self._live)

    # --- requests ---------------------------------------------------------------------------------
    async def play(
        self,
        board: chess.Board,
        limit: chess.engine.Limit,
        *,
        options: dict[str, Any] | None = None,
        game: object = None,
    ) -> chess.Move:
        """The engine's move for ``board`` (which must have a legal move) under ``limit``."""
        result = await self._request(
            game,
            lambda protocol: protocol.play(board, limit, game=game, options=options or {}),
            self._timeout(limit),
        )
        if result.move is None or not board.is_legal(result.move):
            raise EngineFailure(f"engine returned no legal move ({result.move}) for {board.fen()}")
        return result.move

    async def analyse(
        self,
        board: chess.Board,
        limit: chess.engine.Limit,
        *,
        options: dict[str, Any] | None = None,
        game: object = None,
    ) -> chess.engine.InfoDict:
        """The engine's evaluation of ``board`` (score, principal variation, depth, ...)."""
        return await self._request(
            game,
            lambda protocol: protocol.analyse(board, limit, game=game, options=options or {}),
            self._timeout(limit),
        )

    async def check(self) -> None:
        """Start one process now (it stays in the pool) so a broken engine is reported up front."""
        if self._live:
            return
        async with self._slots:
            try:
                process = await self._start()
            except (chess.engine.EngineError, OSError, TimeoutError) as error:
                raise EngineFailure(
                    f"{self.path} did not start as a UCI engine ({_describe(error)})"
                ) from None
            self._idle.append(process)

    def _timeout(self, limit: chess.engine.Limit) -> float:
        return self.move_timeout + (limit.time or 0.0)

    async def _request(
        self, game: object, call: Callable[[chess.engine.UciProtocol], Awaitable[T]], timeout: float
    ) -> T:
        if self._closed:
            raise EngineFailure("the engine pool is closed")
        self.requests += 1
        async with self._slots:
            errors: list[BaseException] = []
            for _attempt in range(2):
                if self._closed:
                    break
                process: _Process | None = None
                try:
                    process = self._take(game) or await self._start()
                    with anyio.fail_after(timeout):
                        result = await call(process.protocol)
                except (chess.engine.EngineError, OSError, TimeoutError) as error:
                    # Crashed, confused or hung: replace the process and try once more.
                    errors.append(error)
                    if process is not None:
                        self.restarts += 1
                        await self._kill(process)
                    continue
                except BaseException:
                    # Cancelled mid-request (or a bug): the process may still be searching; drop it.
                    if process is not None:
                        await self._kill(process)
                    raise
                if self._closed:  # closed while this request ran: aclose has quit it already
                    await self._kill(process)
                else:
                    process.game = game
                    self._idle.append(process)
                return result
        if self._closed:
            raise EngineFailure("the engine pool was closed during the request")
        raise EngineFailure(f"chess engine failed twice on one request ({_describe(errors[-1])})")

    def _take(self, game: object) -> _Process | None:
        """An idle process: the one that last served ``game`` if any, else the least recently used."""
        for i, process in enumerate(self._idle):
            if process.game == game and game is not None:
                return self._idle.pop(i)
        return self._idle.pop(0) if self._idle else None

    # --- process lifecycle ------------------------------------------------------------------------
    async def _start(self) -> _Process:
        if self._closed:
            raise EngineFailure("the engine pool is closed")
        # Spawn, then handshake: a process interrupted mid-handshake is killed *and reaped* by _kill.
        transport, protocol = await chess.engine.UciProtocol.popen(self.path, setpgrp=True)
        process = _Process(transport, protocol, transport.get_pid())
        self._live.add(process)
        self.started += 1
        try:
            with anyio.fail_after(self.start_timeout):
                await protocol.initialize()
                await protocol.configure({"Threads": self.threads, "Hash": self.hash_mb})
            if self._closed:
                raise EngineFailure("the engine pool is closed")
        except BaseException:
            await self._kill(process)
            raise
        self.name = protocol.id.get("name", self.name)
        if self.name:
            ENGINE_NAMES[self.path] = self.name
        return process

    async def _kill(self, process: _Process) -> None:
        """SIGKILL the process and wait (shielded, bounded) until it is reaped."""
        self._live.discard(process)
        with anyio.CancelScope(shield=True):
            if not process.protocol.returncode.done():
                with contextlib.suppress(ProcessLookupError, OSError):
                    process.transport.kill()
                with anyio.move_on_after(5):
                    # shield(): a cancelled wait must not cancel python-chess's own future
                    await asyncio.shield(process.protocol.returncode)
            process.transport.close()

    async def _quit(self, process: _Process) -> None:
        with anyio.CancelScope(shield=True):
            if not process.protocol.returncode.done():
                with anyio.move_on_after(2), contextlib.suppress(Exception):
                    await process.protocol.quit()
            await self._kill(process)

    async def aclose(self) -> None:
        """Quit every process (busy ones too); safe to call twice; shielded from cancellation."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            processes = list(self._live)
            self._idle.clear()
            async with anyio.create_task_group() as group:
                for process in processes:
                    group.start_soon(self._quit, process)
