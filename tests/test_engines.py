"""The engine pool against the real Stockfish: lookup, reuse, bounds, crash and hang recovery, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import anyio
import chess
import chess.engine
import pytest

from lmrl.task import TaskUnavailable
from lmrl.tasks.chess import engines
from lmrl.tasks.chess.engines import INSTALL_HINT, EngineFailure, EnginePool, find_stockfish


def _stockfish() -> str | None:
    try:
        return find_stockfish()
    except TaskUnavailable:
        return None


STOCKFISH = _stockfish()
needs_engine = pytest.mark.skipif(STOCKFISH is None, reason=INSTALL_HINT)
DEPTH1 = chess.engine.Limit(depth=1)


def stockfish_children() -> list[int]:
    """Pids of this process's child processes named stockfish (zombies included)."""
    return engines_of(os.getpid())


def engines_of(parent_pid: int) -> list[int]:
    """Pids of the child processes of ``parent_pid`` named stockfish (zombies included)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == parent_pid and "stockfish" in name:
            found.append(int(entry))
    return found


# --- finding the engine --------------------------------------------------------------------------
def test_find_stockfish_order(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    fake = tmp_path / "my-engine"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("STOCKFISH_PATH", str(fake))
    assert find_stockfish() == str(fake)  # the variable wins over everything
    monkeypatch.delenv("STOCKFISH_PATH")
    monkeypatch.setattr(engines.shutil, "which", lambda name: str(fake) if name == "stockfish" else None)
    assert find_stockfish() == str(fake)  # then PATH
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    monkeypatch.setattr(engines, "FALLBACK_PATHS", (str(tmp_path / "nothing"), str(fake)))
    assert find_stockfish() == str(fake)  # then /usr/games/stockfish


def test_missing_engine_is_one_line_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    monkeypatch.setattr(engines, "FALLBACK_PATHS", (str(tmp_path / "stockfish"),))
    monkeypatch.delenv("STOCKFISH_PATH", raising=False)
    with pytest.raises(TaskUnavailable) as missing:
        find_stockfish()
    assert str(missing.value) == INSTALL_HINT
    assert "apt-get install stockfish" in INSTALL_HINT and "STOCKFISH_PATH" in INSTALL_HINT
    monkeypatch.setenv("STOCKFISH_PATH", str(tmp_path / "nope"))
    with pytest.raises(TaskUnavailable) as wrong:
        find_stockfish()
    assert str(wrong.value).startswith(INSTALL_HINT) and "\n" not in str(wrong.value)
    with pytest.raises(TaskUnavailable):
        EnginePool(1)


# --- the pool ------------------------------------------------------------------------------------
@needs_engine
@pytest.mark.anyio
async def test_pool_reuses_a_bounded_number_of_processes() -> None:
    async with EnginePool(2, STOCKFISH) as pool:
        assert pool.pids() == []  # lazy

        async def game(g: int) -> None:
            board = chess.Board()
            for _ in range(6):
                board.push(await pool.play(board, DEPTH1, game=g))

        async with anyio.create_task_group() as group:
            for g in range(6):
                group.start_soon(game, g)
        assert pool.started == 2 and len(pool.pids()) == 2 and pool.requests == 36
        assert pool.name and pool.name.startswith("Stockfish")
        assert engines.engine_name(STOCKFISH) == pool.name
        assert sorted(stockfish_children()) == pool.pids()
    assert pool.pids() == [] and stockfish_children() == []
    with pytest.raises(EngineFailure, match="closed"):
        await pool.play(chess.Board(), DEPTH1)


@needs_engine
@pytest.mark.anyio
async def test_per_request_options_and_analysis() -> None:
    async with EnginePool(1, STOCKFISH) as pool:
        board = chess.Board("7k/8/5K2/8/8/8/8/6Q1 w - - 0 1")  # mate in 1 (Qg7#)
        move = await pool.play(board, chess.engine.Limit(depth=5), options={"Skill Level": 20})
        assert board.san(move) == "Qg7#"
        weak = {"UCI_LimitStrength": True, "UCI_Elo": 1350}
        assert board.is_legal(await pool.play(board, DEPTH1, options=weak))
        info = await pool.analyse(board, chess.engine.Limit(depth=5))
        assert info["score"].white().mate() == 1
        with pytest.raises(EngineFailure, match="failed twice"):
            await pool.play(board, DEPTH1, options={"No Such Option": 1})
        assert board.is_legal(await pool.play(board, DEPTH1))  # still usable


@needs_engine
@pytest.mark.anyio
async def test_killed_idle_and_busy_processes_are_replaced() -> None:
    async with EnginePool(1, STOCKFISH) as pool:
        board = chess.Board()
        await pool.play(board, DEPTH1)
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)  # dies while idle
        assert board.is_legal(await pool.play(board, DEPTH1))
        assert pool.restarts == 1 and pool.pids() != [pid]

        async def kill_soon(victim: int) -> None:
            await anyio.sleep(0.2)
            os.kill(victim, signal.SIGKILL)

        async with anyio.create_task_group() as group:
            group.start_soon(kill_soon, pool.pids()[0])
            started = time.perf_counter()
            move = await pool.play(board, chess.engine.Limit(time=0.5))  # dies mid-search, retried
        assert board.is_legal(move) and pool.restarts == 2
        assert time.perf_counter() - started >= 0.6
        assert len(stockfish_children()) == 1


@needs_engine
@pytest.mark.anyio
async def test_hung_process_is_killed_after_the_timeout() -> None:
    async with EnginePool(1, STOCKFISH, move_timeout=0.5) as pool:
        board = chess.Board()
        await pool.play(board, DEPTH1)
        [pid] = pool.pids()
        os.kill(pid, signal.SIGSTOP)  # alive but silent
        try:
            move = await pool.play(board, DEPTH1)
        finally:
            if pid in stockfish_children():
                os.kill(pid, signal.SIGKILL)
        assert board.is_legal(move) and pool.restarts == 1 and pid not in pool.pids()
    assert stockfish_children() == []


@pytest.mark.anyio
async def test_an_engine_that_never_works_fails_cleanly(tmp_path) -> None:
    broken = tmp_path / "broken-engine"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    async with EnginePool(2, str(broken), start_timeout=5) as pool:
        with pytest.raises(EngineFailure, match="failed twice"):
            await pool.play(chess.Board(), DEPTH1)
        with pytest.raises(EngineFailure, match="did not start"):
            await pool.check()
    assert stockfish_children() == []


@needs_engine
@pytest.mark.anyio
async def test_cancellation_leaves_no_process_behind() -> None:
    pool = EnginePool(3, STOCKFISH)
    with anyio.move_on_after(0.5):
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(pool.play, chess.Board(), chess.engine.Limit(time=5))
    assert stockfish_children() == []  # the cancelled requests killed their processes
    await pool.play(chess.Board(), DEPTH1)  # the pool is still usable
    assert len(stockfish_children()) == 1
    with anyio.CancelScope() as scope:
        scope.cancel()
        await pool.aclose()  # shielded: closes even inside a cancelled scope
    assert stockfish_children() == [] and pool.closed


@needs_engine
@pytest.mark.anyio
async def test_close_while_requests_are_in_flight() -> None:
    pool = EnginePool(2, STOCKFISH)
    outcomes: list[object] = []

    async def search() -> None:
        try:
            outcomes.append(await pool.play(chess.Board(), chess.engine.Limit(time=5)))
        except EngineFailure as error:  # or Stockfish answers "quit" with its best move so far
            outcomes.append(error)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(search)
        group.start_soon(search)
        await anyio.sleep(0.3)
        await pool.aclose()
    assert len(outcomes) == 2 and time.perf_counter() - started < 3
    assert stockfish_children() == []


@needs_engine
def test_ctrl_c_on_lmrl_run_closes_every_engine(tmp_path) -> None:
    command = [sys.executable, "-m", "lmrl.cli", "run", "--task", "chess", "--model", "scripted/random"]
    command += ["--episodes", "20", "--out", str(tmp_path / "run"), "--no-progress"]
    command += ["--task-option", "chess.engines=2", "--task-option", "chess.opponent_time=0.5"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while len(engines_of(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = engines_of(process.pid)
        assert len(started) == 2
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130 and "interrupted" in err
    assert not [pid for pid in started if os.path.exists(f"/proc/{pid}")]
