"""Build ``endgame_positions.jsonl``, the fixed evaluation set of the ``endgames`` task.

    python tools/build_endgame_positions.py            # the committed file
    python tools/build_endgame_positions.py --out /tmp/positions.jsonl --workers 4

It takes about 3 minutes with 2 engine processes (``--workers``, default ``min(8, cpu_count)``; the
output does not depend on it).

Needs Stockfish (``STOCKFISH_PATH``, ``stockfish`` on PATH, or ``/usr/games/stockfish``); the committed
file was made with Stockfish 15.1 (Debian 15.1-4) and the defaults below.

Procedure, per material (``Q``, ``R``, ``QR``, ``RR``: White's pieces besides the king):

1. Draw ``--candidates`` distinct random positions with ``lmrl.tasks.chess.endgames.random_endgame`` from
   ``random.Random(f"{seed}/{material}")`` (legal, White to move, not in check).
2. Analyse each at depth ``--depth`` (Threads 1, Hash 16 MB, a fresh hash per position, so the
   result does not depend on scheduling) and keep those where Stockfish reports a forced mate for
   White; ``mate_in`` is the reported length in moves. It is an upper bound on the true distance to
   mate, often a loose one at this depth (K+R vs K needs at most 16 moves, K+Q vs K at most 10, yet
   Stockfish reports up to 20-odd): it measures how hard the mate is for Stockfish to see.
3. Keep the positions with the longest ``mate_in`` (ties: generation order); 645 in all, as in the
   paper, split evenly (162 / 161 / 161 / 161). The paper kept Stockfish mates in >= 15 moves; only
   K+R vs K reaches that, so a global threshold would leave three of the four materials out.

The output starts with one header record (``{"header": {...}}``: command, engine, limits, seed, per
material statistics), then one record per position, ``{"fen", "material", "mate_in"}``, the materials
interleaved (Q, R, QR, RR, Q, ...) and shuffled within each material, so any prefix is balanced.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import chess
import chess.engine

from lmrl.task import TaskUnavailable
from lmrl.tasks.chess.endgames import EVAL_PATH, EVAL_SIZE, MATERIALS, random_endgame
from lmrl.tasks.chess.engines import EnginePool, find_stockfish

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "candidates": {"Q": 300, "R": 400, "QR": 400, "RR": 360},
    "depth": 18,
}


def candidates(seed: int, material: str, count: int) -> list[str]:
    rng = random.Random(f"{seed}/{material}")
    fens: dict[str, None] = {}
    while len(fens) < count:
        fens.setdefault(random_endgame(rng, material).fen(), None)
    return list(fens)


async def analyse_all(pool: EnginePool, fens: list[str], depth: int, workers: int) -> list[int | None]:
    """White's mate length (moves) Stockfish reports at ``depth`` for each FEN, ``None`` if no mate."""
    results: list[int | None] = [None] * len(fens)
    jobs = iter(range(len(fens)))

    async def worker() -> None:
        for i in jobs:
            info = await pool.analyse(chess.Board(fens[i]), chess.engine.Limit(depth=depth), game=object())
            mate = info["score"].white().mate() if "score" in info else None
            results[i] = mate if mate is not None and mate > 0 else None

    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    return results


def quotas(total: int, materials: list[str]) -> dict[str, int]:
    base, extra = divmod(total, len(materials))
    return {m: base + (i < extra) for i, m in enumerate(materials)}


async def build(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    materials = list(MATERIALS)
    counts = {m: args.candidates or DEFAULTS["candidates"][m] for m in materials}
    wanted = quotas(args.count, materials)
    kept: dict[str, list[dict[str, Any]]] = {}
    stats: dict[str, Any] = {}
    async with EnginePool(args.workers, find_stockfish(), move_timeout=120) as pool:
        for material in materials:
            started = time.perf_counter()
            fens = candidates(args.seed, material, counts[material])
            found = await analyse_all(pool, fens, args.depth, args.workers)
            mates = [(f, m) for f, m in zip(fens, found, strict=True) if m is not None]
            mates.sort(key=lambda fm: -fm[1])  # stable: ties keep generation order
            chosen = mates[: wanted[material]]
            if len(chosen) < wanted[material]:
                raise SystemExit(f"{material}: only {len(chosen)} positions with a mate; raise --candidates")
            lengths = [m for _, m in chosen]
            kept[material] = [{"fen": f, "material": material, "mate_in": m} for f, m in chosen]
            stats[material] = {
                "candidates": len(fens),
                "with_mate": len(mates),
                "kept": len(chosen),
                "mate_in_min": min(lengths),
                "mate_in_median": statistics.median(lengths),
                "mate_in_max": max(lengths),
            }
            print(
                f"{material}: {len(fens)} candidates, {len(mates)} with a mate found, "
                f"kept {len(chosen)} with mate_in {min(lengths)}..{max(lengths)} "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
        engine = pool.name
    order = random.Random(args.seed)
    for rows in kept.values():
        order.shuffle(rows)
    records = [
        kept[m][i]
        for i in range(max(len(rows) for rows in kept.values()))
        for m in materials
        if i < len(kept[m])
    ]
    fens_seen = {r["fen"] for r in records}
    assert len(fens_seen) == len(records), "duplicate positions"
    header = {
        "description": "endgames evaluation positions: long forced mates per Stockfish, balanced by material",
        "command": "python tools/build_endgame_positions.py" + _non_default_args(args),
        "engine": engine,
        "analysis": {
            "depth": args.depth,
            "threads": 1,
            "hash_mb": 16,
            "fresh_hash_per_position": True,
        },
        "seed": args.seed,
        "count": len(records),
        "materials": stats,
    }
    return header, records


def _non_default_args(args: argparse.Namespace) -> str:
    parts = []
    for name in ("seed", "depth"):
        if getattr(args, name) != DEFAULTS[name]:
            parts.append(f"--{name.replace('_', '-')} {getattr(args, name)}")
    if args.candidates:
        parts.append(f"--candidates {args.candidates}")
    if args.count != EVAL_SIZE:
        parts.append(f"--count {args.count}")
    return "".join(" " + p for p in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=EVAL_PATH)
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="engine processes (same output)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument(
        "--candidates", type=int, help="candidates per material (default: per-material table)"
    )
    parser.add_argument("--depth", type=int, default=DEFAULTS["depth"])
    parser.add_argument("--count", type=int, default=EVAL_SIZE)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        header, records = anyio.run(build, args)
    except TaskUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    lines = [json.dumps({"header": header})] + [json.dumps(r) for r in records]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(
        f"wrote {len(records)} positions to {args.out} in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
