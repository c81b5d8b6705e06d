"""Chess engine throughput: the shared engine pool against one engine process per game.

Plays ``scripted/random`` (White) against the default opponent (Stockfish, UCI_Elo 1350) searching at
depth 1 (the strength-limited engine picks its move at depth 1 anyway), so the numbers measure the
plumbing rather than search time:

* games/s and engine moves/s at concurrency 1 and 8, with one ``EnginePool`` shared by all games
  (``min(8, cpu_count)`` processes, what ``lmrl run`` uses) and with one engine process per game, started
  for the game and quit after it (what a task does standalone), and the ratio of the two in one run;
* chess env steps/s through the real runner (episode records, durable log) with the instant
  ``scripted/random`` agent, at concurrency 1 and 8.

Medians of ``--repeats`` runs. Needs Stockfish.

    python bench/chess_engine.py [--games 32] [--episodes 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import time

import _common  # noqa: F401  (environment and sys.path)
import anyio
from _common import median, runner_rate

from lmrl.tasks import make_task
from lmrl.tasks.chess import Chess, EnginePool, find_stockfish

OPTIONS = {"opponent_depth": 1}


async def play_games(games: int, concurrency: int, shared: bool) -> tuple[float, float, int]:
    """(games/s, engine moves/s, engine moves) for ``games`` random-vs-engine games."""
    pending = iter(range(games))
    engine_moves = 0

    async def worker(pool: EnginePool | None) -> None:
        nonlocal engine_moves
        for seed in pending:
            task = make_task("chess", **OPTIONS)
            assert isinstance(task, Chess)
            task.shared = pool
            task.reset(seed)
            rng = random.Random(seed)
            try:
                while not task.done:
                    move = rng.choice(list(task.board.legal_moves))
                    result = await task.astep(task.board.san(move))
                    engine_moves += "opponent_move" in result.info
            finally:
                await task.aclose()

    started = time.perf_counter()
    pool = EnginePool(min(8, os.cpu_count() or 1), find_stockfish()) if shared else None
    try:
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker, pool)
    finally:
        if pool is not None:
            await pool.aclose()
    wall = time.perf_counter() - started
    return games / wall, engine_moves / wall, engine_moves


def env_steps(concurrency: int, episodes: int) -> tuple[float, int]:
    return runner_rate("chess", "scripted/random", episodes, concurrency, OPTIONS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--games", type=int, default=32, help="games per measurement")
    parser.add_argument("--episodes", type=int, default=16, help="runner episodes per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    anyio.run(play_games, 2, 2, True)  # warm up imports and the binary's page cache
    size = min(8, os.cpu_count() or 1)
    print(f"{find_stockfish()}, {os.cpu_count()} CPUs, pool size {size}; medians of {args.repeats}")
    print()
    print(f"random vs Stockfish (Elo 1350, depth 1), {args.games} games per run")
    print()
    print("| concurrency | engines | games/s | engine moves/s | moves/game | pool speed-up |")
    print("|---|---|---|---|---|---|")
    for concurrency in (1, 8):
        rows = {}
        for shared in (True, False):
            runs = [anyio.run(play_games, args.games, concurrency, shared) for _ in range(args.repeats)]
            rows[shared] = (
                median([r[0] for r in runs]),
                median([r[1] for r in runs]),
                runs[0][2] / args.games,
            )
        for shared in (True, False):
            games_s, moves_s, per_game = rows[shared]
            label = "shared pool" if shared else "one per game"
            ratio = f"{rows[True][0] / rows[False][0]:.2f}x" if shared else ""
            print(f"| {concurrency} | {label} | {games_s:.2f} | {moves_s:,.0f} | {per_game:.0f} | {ratio} |")
    print()
    print(f"chess env steps/s through the runner, scripted/random, {args.episodes} episodes per run")
    print()
    print("| concurrency | steps | steps/s |")
    print("|---|---|---|")
    for concurrency in (1, 8):
        rates, steps = [], 0
        for _ in range(args.repeats):
            rate, steps = env_steps(concurrency, args.episodes)
            rates.append(rate)
        print(f"| {concurrency} | {steps} | {median(rates):,.0f} |")


if __name__ == "__main__":
    main()
