"""One adaptive concurrency limit per provider endpoint, shared by every agent that calls it.

Rate limits belong to an endpoint (a provider account, a self-hosted server), not to an agent object:
the evaluated model, its partners and LLM judges on the same endpoint draw from one limit. The limit is
AIMD, like TCP's congestion window: it starts at the configured concurrency, grows by one after a
window of ``limit`` successful calls made while the limit was what held calls back, halves (floor 1) on
HTTP 429 -- once per round of calls, not once per 429 of the same burst -- and never passes its ceiling.
5xx, timeouts and garbled bodies leave it alone: they say the server is broken, not that we are too
many. A 429's ``Retry-After`` pauses new calls on the whole endpoint until then.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel

CEILING_FACTOR = 4  # default ceiling: this many times the starting concurrency
_MAX_HISTORY = 2000  # entries kept per endpoint (runs of growth are merged into one entry anyway)


class AIMD:
    """The limit's arithmetic, free of I/O and of the event loop (tests drive it with a fake clock)."""

    def __init__(
        self, start: int, ceiling: int, adaptive: bool = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = max(1, start)
        self.ceiling = max(ceiling, self.limit)
        self.adaptive = adaptive
        self.clock = clock
        self.started = clock()
        self.round = 0  # bumped by every decrease: a 429 from an earlier round is the same burst
        self.rate_limited = 0  # 429s seen
        self.paused_until = float("-inf")
        self.paused_s = 0.0  # total time new calls were held back by Retry-After
        self.history: list[list[Any]] = [[0.0, self.limit, "start"]]
        self.dropped = 0  # history entries beyond _MAX_HISTORY
        self._successes = 0

    def succeeded(self, limited: bool) -> bool:
        """A call succeeded; ``limited``: the limit held it back (it waited or took the last slot).
        Growing while calls do not fill the limit would only store up a burst. True if it grew."""
        if not self.adaptive or not limited or self.limit >= self.ceiling:
            return False
        self._successes += 1
        if self._successes < self.limit:
            return False
        self._successes = 0
        self.limit += 1
        self._record("grow")
        return True

    def throttled(self, round_: int, retry_after: float | None) -> None:
        """A 429 for a call sent during decrease round ``round_``."""
        self.rate_limited += 1
        now = self.clock()
        if retry_after:
            until = now + retry_after
            if until > self.paused_until:
                self.paused_s += until - max(self.paused_until, now)
                self.paused_until = until
        if not self.adaptive or round_ != self.round:
            return  # a call sent before the last decrease: that burst has halved the limit already
        self.round += 1
        self._successes = 0
        self.limit = max(1, self.limit // 2)
        self._record("429")

    def pause_left(self) -> float:
        return self.paused_until - self.clock()

    def _record(self, reason: str) -> None:
        t = round(self.clock() - self.started, 3)
        last = self.history[-1]
        if last[2] == reason and (reason == "grow" or last[1] == self.limit):
            last[0], last[1] = t, self.limit  # a run of growth (or of 429s at the floor) is one entry
        elif len(self.history) < _MAX_HISTORY:
            self.history.append([t, self.limit, reason])
        else:
            self.dropped += 1


@dataclass(slots=True)
class Slot:
    """One call's place under the limit; the caller reports how the call went."""

    limiter: EndpointLimiter
    round: int
    limited: bool

    def succeeded(self) -> None:
        if self.limiter.aimd.succeeded(self.limited):
            self.limiter._wake()

    def rate_limited(self, retry_after: float | None) -> None:
        self.limiter.aimd.throttled(self.round, retry_after)


class EndpointLimiter:
    """A FIFO limit on calls in flight whose size the AIMD rule moves.

    It learns within one event loop run (one ``lmrl run``, one ``anyio.run``): the first call of a new
    run starts it afresh, so agents that outlive a run -- or a test -- do not hand the next one a limit
    learned under other conditions. No loop-bound state outlives a wait (one ``anyio.Event`` per waiter).
    """

    def __init__(self, key: str, start: int, ceiling: int, adaptive: bool = True) -> None:
        self.key = key
        self.settings = (start, ceiling, adaptive)  # as agreed by every agent sharing the endpoint
        self.aimd = AIMD(start, ceiling, adaptive)
        self.started_at = time.time()
        self.in_flight = 0
        self._run: object = None  # the event loop run the current state was learned in
        self._waiters: deque[anyio.Event] = deque()

    @property
    def limit(self) -> int:
        return self.aimd.limit

    def join(self, start: int, ceiling: int, adaptive: bool) -> None:
        """Another agent on this endpoint: the start is the smallest configured concurrency, the ceiling
        the largest, and one agent asking for a fixed limit fixes it."""
        old = self.settings
        self.settings = (min(old[0], start), max(old[1], ceiling), old[2] and adaptive)
        if self._run is None or (self.in_flight == 0 and not self._waiters):
            # no call made yet, or none in flight (agents are made before a run, so this is a new one):
            # start from the agreed settings, not from what an earlier run learned
            self._run = None
            self._restart()
        else:  # mid-run: keep what was learned
            self.aimd.ceiling = max(self.aimd.ceiling, ceiling)
            self.aimd.adaptive = self.aimd.adaptive and adaptive

    def _restart(self) -> None:
        self.aimd = AIMD(*self.settings)
        self.started_at = time.time()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        limited = await self._acquire()
        try:
            # A Retry-After pause holds calls that already have a slot too: none is sent before it ends.
            while (left := self.aimd.pause_left()) > 0:
                await anyio.sleep(left)
            yield Slot(self, self.aimd.round, limited)
        finally:
            self._release()

    async def _acquire(self) -> bool:
        run = anyio.lowlevel.current_token()
        if run != self._run:
            if self._run is not None and self.in_flight == 0 and not self._waiters:
                self._restart()
            self._run = run
        if self.in_flight < self.aimd.limit and not self._waiters:
            self.in_flight += 1
            return self.in_flight >= self.aimd.limit
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self._release()  # handed a slot just as we were cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise
        return True

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        # Hand free slots to the oldest waiters directly, so a newcomer cannot jump the queue.
        while self._waiters and self.in_flight < self.aimd.limit:
            self.in_flight += 1
            self._waiters.popleft().set()

    def describe(self) -> dict[str, Any]:
        aimd = self.aimd
        limits = [entry[1] for entry in aimd.history]
        return {
            "adaptive": aimd.adaptive,
            "start": aimd.history[0][1],
            "ceiling": aimd.ceiling,
            "limit": aimd.limit,
            "min": min(limits),
            "max": max(limits),
            "rate_limited": aimd.rate_limited,
            "paused_s": round(aimd.paused_s, 3),
            "started_at": self.started_at,
            # [seconds since started_at, limit, reason]; a run of growth is one entry at its end
            "history": [list(entry) for entry in aimd.history],
            **({"history_dropped": aimd.dropped} if aimd.dropped else {}),
        }


# Live limiters by endpoint: one lives as long as an agent that calls the endpoint does.
_LIMITERS: weakref.WeakValueDictionary[str, EndpointLimiter] = weakref.WeakValueDictionary()


def endpoint_key(provider: str, api_base: str | None) -> str:
    return f"{provider}:{api_base.rstrip('/')}" if api_base else provider


def endpoint_limiter(
    key: str, start: int, ceiling: int | None = None, adaptive: bool = True
) -> EndpointLimiter:
    """The limiter every live agent on endpoint ``key`` shares (made with the first of them)."""
    ceiling = ceiling if ceiling is not None else start * CEILING_FACTOR
    limiter = _LIMITERS.get(key)
    if limiter is None:
        limiter = EndpointLimiter(key, start, ceiling, adaptive)
        _LIMITERS[key] = limiter
    else:
        limiter.join(start, ceiling, adaptive)
    return limiter


def endpoint_limits(agents: Iterable[object]) -> dict[str, dict[str, Any]]:
    """Each endpoint these agents call -> its limit's settings and history (for the run manifest)."""
    found: dict[str, dict[str, Any]] = {}
    for agent in agents:
        limiter = getattr(agent, "limiter", None)
        if isinstance(limiter, EndpointLimiter) and limiter.key not in found:
            found[limiter.key] = limiter.describe()
    return found
