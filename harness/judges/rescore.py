"""``lmrl score``: judge a finished run again without replaying a single episode.

Scores are appended (flushed, fsynced) to ``judges.jsonl`` as ``{key, judge, model, content_hash,
entry}``; a (judge, model, episode content) already scored without error is a cache hit and costs
no call. Loading the run merges the latest score of each judge into ``episode.judges``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from lmrl.episode import Episode
from lmrl.judges.base import Judge, entry_for
from lmrl.rundir import JUDGES, DurableLog, load_episodes, read_jsonl


@dataclass
class ScoreResult:
    scored: int = 0
    cached: int = 0
    errors: int = 0
    skipped: int = 0  # episodes the judge does not apply to, or that ended with an error
    by_judge: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # judge -> (key, score)


async def score_run(
    run_dir: Path, judges: list[Judge], concurrency: int = 16, on_progress: Callable[[], None] | None = None
) -> ScoreResult:
    episodes = load_episodes(run_dir)
    done = {
        (r["judge"], r["key"], r["content_hash"])
        for r in read_jsonl(run_dir / JUDGES)
        if "error" not in r.get("entry", {})
    }
    result = ScoreResult()
    work: list[tuple[Judge, Episode, str]] = []
    for judge in judges:
        result.by_judge[judge.key] = []
        for episode in episodes:
            if episode.error is not None or not judge.applies_to(episode):
                result.skipped += 1
                continue
            digest = episode.content_hash()
            if (judge.key, episode.key, digest) in done:
                result.cached += 1
                score = episode.judges.get(judge.key, {}).get("score")
                if score is not None:
                    result.by_judge[judge.key].append((episode.key, float(score)))
                continue
            work.append((judge, episode, digest))

    log = DurableLog(run_dir / JUDGES)
    limiter = anyio.CapacityLimiter(concurrency)

    async def judge_one(judge: Judge, episode: Episode, digest: str) -> None:
        async with limiter:
            try:
                entry = entry_for(await judge.score(episode), None, judge)
            except Exception as error:  # a failing judge leaves its score missing, with the reason
                entry = entry_for(None, error, judge)
        log.append(
            {
                "key": episode.key,
                "judge": judge.key,
                "model": judge.model,
                "content_hash": digest,
                "entry": entry,
                "at": time.time(),
            }
        )
        if "error" in entry:
            result.errors += 1
        else:
            result.scored += 1
            if entry["score"] is not None:
                result.by_judge[judge.key].append((episode.key, float(entry["score"])))
        if on_progress:
            on_progress()

    try:
        async with anyio.create_task_group() as outer:
            outer.start_soon(log.run)
            async with anyio.create_task_group() as group:
                for item in work:
                    group.start_soon(judge_one, *item)
            outer.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            for judge in judges:
                await judge.aclose()
    return result


def agreement(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> dict[str, float]:
    """How two judges agree on the episodes both scored: n, Pearson r, mean |difference|, exact match."""
    left = dict(a)
    pairs = [(left[key], score) for key, score in b if key in left]
    n = len(pairs)
    if n == 0:
        return {"n": 0, "pearson": math.nan, "mean_abs_diff": math.nan, "exact": math.nan}
    xs, ys = zip(*pairs, strict=True)
    mx, my = sum(xs) / n, sum(ys) / n
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    pearson = sum((x - mx) * (y - my) for x, y in pairs) / (sx * sy) if sx and sy else math.nan
    return {
        "n": n,
        "pearson": pearson,
        "mean_abs_diff": sum(abs(x - y) for x, y in pairs) / n,
        "exact": sum(x == y for x, y in pairs) / n,
    }
